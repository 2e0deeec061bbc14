#include "liber/results.h"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"

namespace liber {

std::string results_json(const std::vector<ResultRecord>& records) {
  nlohmann::json arr = nlohmann::json::array();
  for (const ResultRecord& r : records) {
    const TrainResult& t = r.result;
    arr.push_back({{"dataset", r.dataset},
                   {"data_note", r.data_note},
                   {"backbone", r.backbone},
                   {"variant", r.variant},
                   {"population", r.population},
                   {"users", r.users},
                   {"auc", t.test.auc},
                   {"logloss", t.test.logloss},
                   {"gauc", t.test.gauc},
                   {"valid_auc", t.valid.auc},
                   {"epochs", t.epochs},
                   {"best_epoch", t.best_epoch},
                   {"train_samples_per_s", t.train_samples_per_s},
                   {"train_seconds", t.train_seconds},
                   {"threads", t.threads},
                   {"seed", r.seed},
                   {"train_samples", r.train_samples},
                   {"valid_samples", r.valid_samples},
                   {"test_samples", r.test_samples}});
  }
  return arr.dump(2);
}

void write_results_json(const std::vector<ResultRecord>& records, const std::string& path) {
  std::ofstream out(path);
  out << results_json(records) << "\n";
  if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write results to {}", path));
}

}  // namespace liber
