// Crash safety of the service: the real `liber serve` binary, SIGKILLed at random points
// while a client sends numbered events and resends whatever was not acknowledged
// (at-least-once). After the last restart every event is stored exactly once and the
// partitions are those the in-memory partitioner closes over the same stream, and a saved
// model still scores.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/test_ubsp_util.h"
#include "fixtures.h"
#include "helpers/event_json.h"
#include "helpers/store_check.h"
#include "liber/serve.h"
#include "serve/model_fixture.h"
#include "serve/serve_child.h"

namespace liber {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::tiny_log;

constexpr const char* kToken = "crash-token";

TEST(ServeCrash, EveryEventStoredExactlyOnceAcrossSigkills) {
  const char* cli = std::getenv("LIBER_TEST_CLI");
  ASSERT_NE(cli, nullptr);
  TempDir dir{"liber-serve-crash"};
  const BehaviorLog log = tiny_log(30, 6, {"A", "B", "C"});
  PartitionRule rule;
  rule.count = 5;
  {
    auto store = open_rocksdb_store(dir / "store");
    Ingestor(*store, log, rule).ingest({});
  }
  testing::write_file(dir / "token", std::string(kToken) + "\n");
  const std::string model = testing::train_small_model(log, rule, dir).string();

  // Numbered events: distinct (user, item, ts), in time order.
  std::vector<Event> events;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 3000; ++i)
    events.push_back(Event{static_cast<uint32_t>(1 + rng() % 6), static_cast<uint32_t>(1 + rng() % 30),
                           1000 + i, static_cast<float>(1 + rng() % 5), -1});
  constexpr std::size_t kBatch = 10;
  std::size_t acked = 0;  // events [0, acked) are acknowledged
  uint64_t accepted = 0, duplicates = 0;
  int kills = 0, run = 0;
  while (acked < events.size() && run < 300) {
    const testing::ServeChild child = testing::spawn_serve(
        cli, dir / "store", dir / "token", (dir / ("stderr." + std::to_string(run++))).string(),
        {"--no-learn", "--score-model", model});
    ASSERT_GT(child.port, 0) << testing::read_file(child.stderr_path);
    // The killer: a random moment within the next ~12 ms, unless the client is done.
    const auto kill_after = std::chrono::microseconds(rng() % 12000);
    std::atomic<bool> finished{false};
    std::thread killer([&] {
      const auto until = std::chrono::steady_clock::now() + kill_after;
      while (!finished && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ::kill(child.pid, finished ? SIGTERM : SIGKILL);
    });
    httplib::Client client("127.0.0.1", child.port);
    client.set_bearer_token_auth(kToken);
    client.set_read_timeout(5, 0);
    while (acked < events.size()) {
      json batch = json::array();
      for (std::size_t i = acked; i < std::min(events.size(), acked + kBatch); ++i)
        batch.push_back(testing::event_object(log, events[i]));
      auto r = client.Post("/v1/events", batch.dump(), "application/json");
      if (!r || r->status != 200) break;  // killed: resend from `acked` after the restart
      const json body = json::parse(r->body);
      accepted += body["accepted"].get<uint64_t>();
      duplicates += body["duplicate"].get<uint64_t>();
      acked += batch.size();
    }
    finished = acked == events.size();
    killer.join();
    int status = 0;
    ::waitpid(child.pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ++kills;
  }
  ASSERT_EQ(acked, events.size());
  EXPECT_GE(kills, 10);
  // A batch stored but not acknowledged (killed before the answer) came back as duplicates
  // when resent: never accepted twice.
  EXPECT_EQ(accepted + duplicates, events.size());

  auto store = open_rocksdb_store(dir / "store", {.read_only = true});
  const std::size_t held = testing::expect_store_matches_partitioner(*store, log, events, rule);
  EXPECT_EQ(held, events.size());  // each event once: in one partition or in the cache
  std::fprintf(stderr, "serve crash test: %d runs, %d SIGKILLs, %llu events accepted, %llu resent as "
                       "duplicates\n", run, kills, static_cast<unsigned long long>(accepted),
               static_cast<unsigned long long>(duplicates));

  // After the last restart the saved model scores a user from the events as stored.
  store.reset();
  const testing::ServeChild child = testing::spawn_serve(
      cli, dir / "store", dir / "token", (dir / "stderr.score").string(), {"--no-learn", "--score-model", model});
  ASSERT_GT(child.port, 0) << testing::read_file(child.stderr_path);
  httplib::Client client("127.0.0.1", child.port);
  client.set_bearer_token_auth(kToken);
  client.set_read_timeout(10, 0);
  const json request{{"user", log.users.ids.key(1)},
                     {"items", {log.items.ids.key(1), log.items.ids.key(2), log.items.ids.key(3)}}};
  auto r = client.Post("/v1/score", request.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  EXPECT_EQ(body["scores"].size(), 3u);
  EXPECT_EQ(body["history"], 10);  // the user's last ten stored events
  for (const json& p : body["scores"]) EXPECT_TRUE(p.get<double>() > 0 && p.get<double>() < 1);
  ::kill(child.pid, SIGTERM);
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace liber
