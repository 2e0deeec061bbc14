// liber serve's ingest over HTTP beside `liber ingest`'s path (Ingestor::ingest) on the same
// MovieLens-1M stream in the same run, loopback only. Clients split the users between them
// so each user's events stay in time order; each request carries `--batch` events.
//
// usage: serve_bench --data-dir DIR [--clients N] [--batch N] [--events N] [--no-sync]
//   DIR: a MovieLens-1M directory (the developers' copy holds users 1-2999 only).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "liber/data.h"
#include "liber/serve.h"
#include "liber/ubsp.h"

namespace {

namespace fs = std::filesystem;
using namespace liber;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir = std::getenv("LIBER_DATA_DIR") ? std::getenv("LIBER_DATA_DIR") : "";
  int clients = 2;
  std::size_t batch = 1000, limit = 0;
  bool sync = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--data-dir") data_dir = next();
    else if (a == "--clients") clients = std::atoi(next().c_str());
    else if (a == "--batch") batch = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--events") limit = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--no-sync") sync = false;
    else {
      std::fprintf(stderr, "serve_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (data_dir.empty()) {
    std::fprintf(stderr, "serve_bench: --data-dir DIR (MovieLens-1M) or $LIBER_DATA_DIR\n");
    return 2;
  }
  const BehaviorLog log = read_movielens_1m(data_dir);
  std::vector<Event> stream = time_ordered(log.events);
  if (limit > 0 && limit < stream.size()) stream.resize(limit);
  PartitionRule rule;  // K = 50, as liber ingest
  const fs::path dir = fs::temp_directory_path() / ("liber-serve-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);

  // 1. liber ingest's path with its defaults: the whole stream through the Ingestor, atomic
  // batches of 4,096, no fsync (a process crash loses nothing; a power loss the last writes).
  double direct_s = 0;
  {
    auto store = open_rocksdb_store(dir / "direct");
    IngestOptions io;
    Ingestor ing(*store, log, rule, io);
    const auto t0 = Clock::now();
    const IngestStats st = ing.ingest(stream);
    direct_s = seconds_since(t0);
    std::printf("liber ingest (its defaults): %zu events in %.2f s = %.0f events/s (%llu partitions)\n",
                stream.size(), direct_s, stream.size() / direct_s,
                static_cast<unsigned long long>(st.partitions()));
  }

  // 2. The service: the same stream as JSON requests of `batch` events over loopback.
  auto store = open_rocksdb_store(dir / "served");
  Ingestor(*store, log, rule).ingest({});  // the catalog and the rule, no events
  ServeOptions opt;
  opt.port = 0;
  opt.token = "bench";
  opt.sync = sync;
  opt.threads = clients;
  opt.limits.max_events = std::max<std::size_t>(batch, 10000);
  Service service(*store, opt);
  service.bind();
  std::thread server([&] { service.run(); });
  // Per client: its users' events in time order, pre-rendered (the client's JSON is not the
  // server's cost).
  std::vector<std::vector<std::string>> bodies(static_cast<std::size_t>(clients));
  {
    std::vector<nlohmann::json> open(static_cast<std::size_t>(clients), nlohmann::json::array());
    for (const Event& e : stream) {
      const std::size_t c = e.user % static_cast<std::size_t>(clients);
      open[c].push_back({{"user", log.users.ids.key(e.user)}, {"item", log.items.ids.key(e.item)},
                         {"ts", e.ts}, {"rating", e.rating}});
      if (open[c].size() == batch) bodies[c].push_back(open[c].dump()), open[c] = nlohmann::json::array();
    }
    for (std::size_t c = 0; c < open.size(); ++c)
      if (!open[c].empty()) bodies[c].push_back(open[c].dump());
  }
  std::vector<uint64_t> accepted(static_cast<std::size_t>(clients), 0);
  std::vector<std::vector<double>> latency(static_cast<std::size_t>(clients));
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", service.port());
      client.set_bearer_token_auth("bench");
      client.set_read_timeout(60, 0);
      for (const std::string& body : bodies[static_cast<std::size_t>(c)]) {
        const auto r0 = Clock::now();
        auto r = client.Post("/v1/events", body, "application/json");
        latency[static_cast<std::size_t>(c)].push_back(seconds_since(r0));
        if (!r || r->status != 200) {
          std::fprintf(stderr, "serve_bench: request failed (%d)\n", r ? r->status : -1);
          std::exit(1);
        }
        accepted[static_cast<std::size_t>(c)] += nlohmann::json::parse(r->body)["accepted"].get<uint64_t>();
      }
    });
  for (auto& t : threads) t.join();
  const double served_s = seconds_since(t0);
  service.stop();
  server.join();
  uint64_t total = 0;
  std::vector<double> all;
  for (int c = 0; c < clients; ++c) {
    total += accepted[static_cast<std::size_t>(c)];
    all.insert(all.end(), latency[static_cast<std::size_t>(c)].begin(), latency[static_cast<std::size_t>(c)].end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double q) { return all.empty() ? 0.0 : all[static_cast<std::size_t>(q * (all.size() - 1))]; };
  std::printf("liber serve: %zu events (%llu accepted) in %zu requests of %zu from %d clients in "
              "%.2f s = %.0f events/s; request p50 %.1f ms, p99 %.1f ms (%s)\n",
              stream.size(), static_cast<unsigned long long>(total), all.size(), batch, clients,
              served_s, stream.size() / served_s, pct(0.5) * 1e3, pct(0.99) * 1e3,
              sync ? "fsync per request" : "no fsync");
  std::printf("ratio: serve / ingest = %.2f (goal >= 0.5)\n", direct_s / served_s);
  store.reset();
  fs::remove_all(dir);
  return total == stream.size() ? 0 : 1;
}
