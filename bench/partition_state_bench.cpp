// Where a Kafka worker keeps the state of its partitions: one store for all of them (what
// liber serve --kafka does: each batch of messages, from several partitions, and their
// offsets in one atomic write) against one store per Kafka partition (each batch split by
// partition, one write per store that has events in it). Both run the same Ingestor::deliver
// on the same MovieLens-1M stream, in arrival order, batches of --batch messages, users
// spread over --partitions partitions by a hash of the user id, as a keyed producer does.
//
// usage: partition_state_bench --data-dir DIR [--partitions 6] [--batch 1000] [--events N]
//   DIR: a MovieLens-1M directory (the developers' copy holds users 1-2999 only).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "liber/data.h"
#include "liber/store.h"
#include "liber/ubsp.h"

namespace {

namespace fs = std::filesystem;
using namespace liber;
using Clock = std::chrono::steady_clock;

uint64_t dir_bytes(const fs::path& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir;
  std::size_t limit = 0, batch = 1000;
  int partitions = 6;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--data-dir") data_dir = next();
    else if (a == "--events") limit = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--partitions") partitions = std::atoi(next().c_str());
    else if (a == "--batch") batch = std::strtoull(next().c_str(), nullptr, 10);
    else {
      std::fprintf(stderr, "partition_state_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (data_dir.empty() || partitions < 1 || batch < 1) {
    std::fprintf(stderr, "partition_state_bench --data-dir DIR [--partitions P] [--batch N] [--events N]\n");
    return 2;
  }
  const BehaviorLog log = read_movielens_1m(data_dir);
  std::vector<Event> stream = time_ordered(log.events);
  if (limit > 0 && limit < stream.size()) stream.resize(limit);
  std::vector<int> partition_of(log.users.size());
  for (uint32_t u = 1; u < log.users.size(); ++u)
    partition_of[u] = static_cast<int>(std::hash<std::string>{}(log.users.ids.key(u)) % static_cast<std::size_t>(partitions));
  PartitionRule rule;
  const fs::path dir = fs::temp_directory_path() / ("liber-partition-state-" + std::to_string(::getpid()));

  std::printf("%zu events, %d partitions, batches of %zu messages\n", stream.size(), partitions, batch);
  for (bool sync : {false, true}) {
    double seconds[2] = {0, 0};
    uint64_t writes[2] = {0, 0}, bytes[2] = {0, 0};
    for (int layout = 0; layout < 2; ++layout) {  // 0: one store, 1: a store per partition
      fs::remove_all(dir);
      const int n = layout == 0 ? 1 : partitions;
      std::vector<std::unique_ptr<Store>> stores;
      std::vector<std::unique_ptr<Ingestor>> ingestors;
      IngestOptions io;
      io.sync = sync;
      io.stream = "kafka";
      for (int s = 0; s < n; ++s) {
        stores.push_back(open_rocksdb_store(dir / std::to_string(s)));
        ingestors.push_back(std::make_unique<Ingestor>(*stores.back(), log, rule, io));
      }
      const auto t0 = Clock::now();
      std::vector<std::vector<Event>> split(n);
      for (std::size_t at = 0; at < stream.size(); at += batch) {
        const std::size_t end = std::min(stream.size(), at + batch);
        for (auto& v : split) v.clear();
        std::vector<int64_t> next(partitions, -1);
        for (std::size_t i = at; i < end; ++i) {
          const int p = partition_of[stream[i].user];
          split[layout == 0 ? 0 : p].push_back(stream[i]);
          next[p] = static_cast<int64_t>(i + 1);  // stands for the partition's next offset
        }
        for (int s = 0; s < n; ++s) {
          if (split[s].empty()) continue;
          ingestors[s]->deliver(split[s], nullptr, [&](WriteBatch& b) {
            for (int p = 0; p < partitions; ++p)
              if (next[p] >= 0 && (layout == 0 || p == s))
                b.put(kMetaFamily, fmt::format("kafka/events/{}", p), std::to_string(next[p]));
          });
          ++writes[layout];
        }
      }
      seconds[layout] = std::chrono::duration<double>(Clock::now() - t0).count();
      for (auto& st : stores) st->flush();
      bytes[layout] = dir_bytes(dir);
      ingestors.clear();
      stores.clear();
    }
    std::printf("sync %-3s  one store: %.2f s, %.0f events/s, %llu atomic writes, %.1f MB | a store per "
                "partition: %.2f s, %.0f events/s, %llu writes, %.1f MB | per-partition time / one-store time = %.2f\n",
                sync ? "on" : "off", seconds[0], stream.size() / seconds[0],
                static_cast<unsigned long long>(writes[0]), bytes[0] / 1e6, seconds[1], stream.size() / seconds[1],
                static_cast<unsigned long long>(writes[1]), bytes[1] / 1e6, seconds[1] / seconds[0]);
  }
  fs::remove_all(dir);
  return 0;
}
