// POST /v1/score latency at a fixed request rate (open loop: latency counts from each
// request's scheduled time, so a slow answer delays none of the next), beside the same
// requests through the Scorer in process (the peer: what HTTP and JSON add), loopback only.
// With --llm the service's background pipeline learns the store's pending partitions
// meanwhile (the "with UIL" figure).
//
// usage: score_bench --store DIR --model DIR [--rate R] [--seconds S] [--items N]
//                    [--http-threads N] [--llm GGUF --encoder GGUF --llm-threads N]
//   The store is used as it is (the pipeline writes its records into it).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "liber/ctr.h"
#include "liber/llm.h"
#include "liber/score.h"
#include "liber/serve.h"
#include "liber/ubsp.h"

namespace {

using namespace liber;
using Clock = std::chrono::steady_clock;

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  std::string store_dir, model_dir, llm_path, encoder_path;
  double rate = 20, seconds = 20;
  std::size_t n_items = 100;
  int http_threads = 1, llm_threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--store") store_dir = next();
    else if (a == "--model") model_dir = next();
    else if (a == "--rate") rate = std::atof(next().c_str());
    else if (a == "--seconds") seconds = std::atof(next().c_str());
    else if (a == "--items") n_items = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--http-threads") http_threads = std::atoi(next().c_str());
    else if (a == "--llm") llm_path = next();
    else if (a == "--encoder") encoder_path = next();
    else if (a == "--llm-threads") llm_threads = std::atoi(next().c_str());
    else {
      std::fprintf(stderr, "score_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (store_dir.empty() || model_dir.empty()) {
    std::fprintf(stderr, "score_bench: --store DIR --model DIR (liber train --store ... --save-model DIR)\n");
    return 2;
  }
  set_compute_threads(1);  // one request, one core: requests run in parallel on the HTTP threads
  auto store = open_rocksdb_store(store_dir);
  const BehaviorLog catalog = load_behavior_log(*store, false);
  // The requests: random users, each with n_items random items of the catalog.
  std::mt19937_64 rng(3);
  struct Request {
    std::string user;
    std::vector<std::string> items;
    std::string body;
  };
  std::vector<Request> requests(512);
  for (Request& r : requests) {
    r.user = catalog.users.ids.key(static_cast<uint32_t>(1 + rng() % (catalog.users.size() - 1)));
    for (std::size_t k = 0; k < n_items; ++k)
      r.items.push_back(catalog.items.ids.key(static_cast<uint32_t>(1 + rng() % (catalog.items.size() - 1))));
    r.body = nlohmann::json{{"user", r.user}, {"items", r.items}}.dump();
  }

  // The peer: the same requests through the Scorer, in process, one after another.
  {
    Scorer scorer(*store, model_dir);
    // A user's first request reads its knowledge from the store: the cold figure.
    std::vector<double> cold;
    for (const Request& r : requests) {
      const auto s0 = Clock::now();
      scorer.score(r.user, r.items);
      cold.push_back(std::chrono::duration<double>(Clock::now() - s0).count());
    }
    std::printf("Scorer in process, each user's first request (reads its knowledge): p50 %.2f ms, "
                "p99 %.2f ms\n", pct(cold, 0.5) * 1e3, pct(cold, 0.99) * 1e3);
    std::vector<double> lat;
    const auto t0 = Clock::now();
    for (const Request& r : requests) {
      const auto s0 = Clock::now();
      scorer.score(r.user, r.items);
      lat.push_back(std::chrono::duration<double>(Clock::now() - s0).count());
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("Scorer in process: %zu requests of %zu items, p50 %.2f ms, p99 %.2f ms, %.0f requests/s "
                "(1 thread)\n", lat.size(), n_items, pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3,
                static_cast<double>(lat.size()) / s);
  }

  std::unique_ptr<LlmEngine> llm, encoder;
  if (!llm_path.empty()) {
    LlamaOptions o;
    o.model_path = llm_path;
    o.threads = llm_threads;
    o.parallel = 8;
    o.context = 16384;
    llm = make_llama_engine(o);
    LlamaOptions e;
    e.model_path = encoder_path.empty() ? default_encoder_path() : encoder_path;
    e.embeddings = true;
    e.threads = llm_threads;
    encoder = make_llama_engine(e);
  }
  ServeOptions opt;
  opt.port = 0;
  opt.token = "bench";
  opt.threads = http_threads;
  opt.model = model_dir;
  Service service(*store, opt, llm.get(), encoder.get());
  service.bind();
  std::thread server([&] { service.run(); });
  {  // every user's knowledge read once, as in the peer's measured pass
    httplib::Client client("127.0.0.1", service.port());
    client.set_bearer_token_auth("bench");
    for (const Request& r : requests) client.Post("/v1/score", r.body, "application/json");
  }
  if (llm) std::this_thread::sleep_for(std::chrono::seconds(5));  // the pipeline is under way

  // Open loop at `rate`: request i is due at t0 + i / rate; two client threads take turns.
  const auto total = static_cast<std::size_t>(rate * seconds);
  std::vector<double> lat(total, -1);
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now() + std::chrono::milliseconds(100);
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c)
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", service.port());
      client.set_bearer_token_auth("bench");
      client.set_read_timeout(60, 0);
      client.set_tcp_nodelay(true);
      for (std::size_t i = static_cast<std::size_t>(c); i < total; i += 2) {
        const auto due = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate));
        std::this_thread::sleep_until(due);
        auto r = client.Post("/v1/score", requests[i % requests.size()].body, "application/json");
        if (!r || r->status != 200) {
          std::fprintf(stderr, "score_bench: request failed (%d) %s\n", r ? r->status : -1, r ? r->body.c_str() : "");
          std::exit(1);
        }
        lat[i] = std::chrono::duration<double>(Clock::now() - due).count();
      }
    });
  for (auto& t : clients) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("process CPU during the open-loop run: %.1f cores busy on average\n",
              (cpu_seconds() - cpu0) / wall);
  // Closed loop: two clients back to back for 5 s, the most the service answers.
  std::atomic<uint64_t> answered{0};
  {
    const auto until = Clock::now() + std::chrono::seconds(5);
    std::vector<std::thread> loop;
    for (int c = 0; c < 2; ++c)
      loop.emplace_back([&, c] {
        httplib::Client client("127.0.0.1", service.port());
        client.set_bearer_token_auth("bench");
        client.set_tcp_nodelay(true);
        for (std::size_t i = static_cast<std::size_t>(c); Clock::now() < until; i += 2)
          if (auto r = client.Post("/v1/score", requests[i % requests.size()].body, "application/json");
              r && r->status == 200)
            ++answered;
      });
    for (auto& t : loop) t.join();
  }
  std::string metrics;
  {
    httplib::Client client("127.0.0.1", service.port());
    client.set_bearer_token_auth("bench");
    if (auto r = client.Get("/metrics")) metrics = r->body;
  }
  service.stop();
  server.join();
  std::printf("liber serve /v1/score at %.0f requests/s offered for %.0f s: %zu requests of %zu items, "
              "p50 %.2f ms, p99 %.2f ms, %.1f requests/s served (%d HTTP thread(s), 1 compute thread%s)\n",
              rate, seconds, total, n_items, pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3,
              static_cast<double>(total) / wall, http_threads,
              llm ? (", pipeline learning with " + std::to_string(llm_threads) + " LLM thread(s)").c_str()
                  : ", no pipeline");
  std::printf("liber serve /v1/score closed loop, 2 clients: %.0f requests/s\n", answered / 5.0);
  if (llm) {
    // Calls and tokens are counted when a run ends; records as each is written.
    for (const char* name : {"\nliber_records_total{result=\"verified\"} ", "\nliber_records_total{result=\"rejected\"} ",
                             "\nliber_records_total{result=\"failed\"} ", "\nliber_llm_calls_total "}) {
      const auto at = metrics.find(name);
      if (at != std::string::npos)
        std::printf("pipeline during the run: %s\n", metrics.substr(at + 1, metrics.find('\n', at + 1) - at - 1).c_str());
    }
  }
  return 0;
}
