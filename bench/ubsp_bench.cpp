// The MovieLens-1M reader, and UBSP throughput on the MovieLens-1M stream (global time order): the in-memory Partitioner
// (fixed K and the interest-shift rule), the RocksDB-backed Ingestor (batched atomic
// writes), bytes of state per user, and the offline pandas baseline (bench/ubsp_pandas.py).
//
// usage: ubsp_bench [--data-dir DIR] [--no-pandas] [google-benchmark flags]
//   DIR defaults to $LIBER_DATA_DIR (a MovieLens-1M directory; a partial copy is fine).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include "liber/data.h"
#include "liber/ubsp.h"

#ifndef LIBER_SOURCE_DIR
#define LIBER_SOURCE_DIR "."
#endif

namespace {

namespace fs = std::filesystem;
using namespace liber;

std::string g_data_dir;
BehaviorLog* g_log = nullptr;
std::vector<Event>* g_stream = nullptr;

PartitionRule fixed_k(std::size_t k) {
  PartitionRule r;
  r.count = k;
  return r;
}

PartitionRule shift_rule() {
  PartitionRule r;
  r.count = 0;
  r.shift = true;
  return r;
}

void run_memory(benchmark::State& state, const PartitionRule& rule) {
  Partitioner part(rule, &g_log->items);
  std::size_t partitions = 0;
  for (auto _ : state) {
    std::vector<UserState> users(g_log->users.size());
    std::vector<Partition> closed;
    closed.reserve(g_stream->size() / 20);
    for (const Event& e : *g_stream) part.add(users[e.user], e, closed);
    partitions = closed.size();
    benchmark::DoNotOptimize(closed.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * g_stream->size()));
  state.counters["partitions"] = static_cast<double>(partitions);
}

void BM_MemoryFixedK50(benchmark::State& state) { run_memory(state, fixed_k(50)); }
void BM_MemoryShift(benchmark::State& state) { run_memory(state, shift_rule()); }

void BM_DurableFixedK50(benchmark::State& state) {
  const fs::path dir = fs::temp_directory_path() / ("liber-ubsp-bench-" + std::to_string(::getpid()));
  double bytes_per_user = 0, sst = 0, wal = 0;
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir);
    state.ResumeTiming();
    {
      auto store = open_rocksdb_store(dir);
      Ingestor ing(*store, *g_log, fixed_k(50), {.batch_events = static_cast<std::size_t>(state.range(0))});
      ing.ingest(*g_stream);
      state.PauseTiming();
      store->flush();
      const StoreSize size = store->size();
      uint64_t users = 0;
      for_each_cache(*store, [&](const StoredCache&) { ++users; });
      sst = static_cast<double>(size.sst_bytes);
      wal = static_cast<double>(size.wal_bytes);
      bytes_per_user = users ? static_cast<double>(size.total_on_disk()) / users : 0;
      state.ResumeTiming();
    }
  }
  fs::remove_all(dir);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * g_stream->size()));
  state.counters["bytes_per_user"] = bytes_per_user;
  state.counters["sst_MB"] = sst / 1e6;
  state.counters["wal_MB"] = wal / 1e6;
}

// The reader: the ratings, movies and users files of the data dir into a BehaviorLog (the
// figure the unit tests used to bound; a timing belongs here, not in a test).
void BM_ReadMovielens1m(benchmark::State& state) {
  std::size_t events = 0;
  for (auto _ : state) {
    BehaviorLog log = read_movielens_1m(g_data_dir);
    events = log.events.size();
    benchmark::DoNotOptimize(log.events.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events));
}

BENCHMARK(BM_ReadMovielens1m)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_MemoryFixedK50)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_MemoryShift)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_DurableFixedK50)->Arg(4096)->Unit(benchmark::kMillisecond)->Iterations(3);

struct Dist {
  std::size_t n = 0, min = 0, max = 0;
  double mean = 0, median = 0;
};

Dist distribution(std::vector<std::size_t> v) {
  Dist d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  d.n = v.size();
  d.min = v.front();
  d.max = v.back();
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  d.median = v.size() % 2 ? static_cast<double>(v[v.size() / 2])
                          : 0.5 * static_cast<double>(v[v.size() / 2 - 1] + v[v.size() / 2]);
  return d;
}

void report_rule(const char* name, const PartitionRule& rule) {
  MemoryRun run = partition_in_memory(*g_log, *g_stream, rule);
  std::vector<std::size_t> sizes;
  std::map<CloseReason, std::size_t> reasons;
  std::size_t users_with = 0;
  for (const auto& p : run.partitions) {
    sizes.push_back(p.events.size());
    ++reasons[p.reason];
  }
  std::size_t cached = 0;
  for (const auto& u : run.users) {
    cached += u.cache.size();
    if (u.next_seq > 0) ++users_with;
  }
  const Dist d = distribution(sizes);
  std::printf("%-28s %6zu partitions (%zu users with >= 1), size mean %.1f median %.1f min %zu "
              "max %zu; %zu events still cached;",
              name, d.n, users_with, d.mean, d.median, d.min, d.max, cached);
  for (const auto& [r, n] : reasons) std::printf(" %s %zu", to_string(r), n);
  std::printf("\n");
}

double memory_events_per_second() {
  Partitioner part(fixed_k(50), &g_log->items);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<UserState> users(g_log->users.size());
    std::vector<Partition> closed;
    const auto t0 = std::chrono::steady_clock::now();
    for (const Event& e : *g_stream) part.add(users[e.user], e, closed);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return static_cast<double>(g_stream->size()) / best;
}

void compare_with_pandas() {
  const std::string script = std::string(LIBER_SOURCE_DIR) + "/bench/ubsp_pandas.py";
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + g_data_dir + "' 50";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return;
  char line[256];
  double pandas_s = 0, pandas_parts = 0;
  while (std::fgets(line, sizeof line, p)) {
    if (std::strncmp(line, "partition_seconds ", 18) == 0) pandas_s = std::atof(line + 18);
    if (std::strncmp(line, "partitions ", 11) == 0) pandas_parts = std::atof(line + 11);
  }
  if (::pclose(p) != 0 || pandas_s <= 0) {
    std::printf("pandas baseline: not available (%s)\n", cmd.c_str());
    return;
  }
  const double pandas_rate = static_cast<double>(g_stream->size()) / pandas_s;
  const double ours = memory_events_per_second();
  MemoryRun run = partition_in_memory(*g_log, *g_stream, fixed_k(50));
  std::printf("fixed K=50, %zu events: liber in-memory %.2fM events/s (streaming, one event at a "
              "time), pandas offline %.2fM events/s (sort + cumcount) -> ratio %.1fx; "
              "partitions liber %zu, pandas %.0f\n",
              g_stream->size(), ours / 1e6, pandas_rate / 1e6, ours / pandas_rate,
              run.partitions.size(), pandas_parts);
}

}  // namespace

int main(int argc, char** argv) {
  bool pandas = true;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
      g_data_dir = argv[++i];
    } else if (std::strcmp(argv[i], "--no-pandas") == 0) {
      pandas = false;
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (g_data_dir.empty()) {
    const char* env = std::getenv("LIBER_DATA_DIR");
    if (!env) {
      std::fprintf(stderr, "ubsp_bench: give --data-dir DIR or set LIBER_DATA_DIR (a "
                           "MovieLens-1M directory)\n");
      return 2;
    }
    g_data_dir = env;
    if (fs::exists(fs::path(env) / "ml-1m")) g_data_dir = (fs::path(env) / "ml-1m").string();
  }
  try {
    static BehaviorLog log = read_movielens_1m(g_data_dir);
    static std::vector<Event> stream = time_ordered(log.events);
    g_log = &log;
    g_stream = &stream;
    std::printf("%s\n", log.description.c_str());
    report_rule("fixed K=50", fixed_k(50));
    report_rule("interest shift (W=20, 0.35)", shift_rule());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ubsp_bench: %s\n", e.what());
    return 1;
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (pandas) compare_with_pandas();
  return 0;
}
