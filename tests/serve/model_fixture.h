// A small saved model (the backbone alone) for the service's tests: a store of its own with
// `log`'s catalog and a generated stream, one DIN trained on it for one epoch.
#pragma once

#include <filesystem>
#include <random>

#include "liber/score.h"
#include "liber/ubsp.h"

namespace liber::testing {

inline std::filesystem::path train_small_model(const BehaviorLog& log, const PartitionRule& rule,
                                               const std::filesystem::path& dir) {
  std::vector<Event> events;
  std::mt19937_64 rng(5);
  for (uint32_t u = 1; u < log.users.size(); ++u)
    for (int i = 0; i < 20; ++i)
      events.push_back(Event{u, static_cast<uint32_t>(1 + rng() % (log.items.size() - 1)),
                             1000 + 10 * i + u, static_cast<float>(1 + rng() % 5), -1});
  auto store = open_rocksdb_store(dir / "train-store");
  Ingestor(*store, log, rule).ingest(time_ordered(events));
  ModelTraining t;
  t.model.backbone = "din";
  t.model.embedding_dim = 8;
  t.train.max_epochs = 1;
  t.train.batch_size = 64;
  t.train.threads = 1;
  t.train.progress = false;
  train_model(*store, t, dir / "model");
  return dir / "model";
}

}  // namespace liber::testing
