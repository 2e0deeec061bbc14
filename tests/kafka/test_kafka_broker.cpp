// liber serve --kafka against a real Kafka broker (scripts/kafka.sh: Kafka 4.x, KRaft, one
// node on 127.0.0.1): a producer streams numbered events while the worker is SIGKILLed at
// random points and the broker is killed and restarted once. After the last run every event
// is in the store exactly once, the partitions are the in-memory partitioner's over each
// user's events, and the stored offsets account for every message.
#include <gtest/gtest.h>

#include <librdkafka/rdkafkacpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/test_ubsp_util.h"
#include "fixtures.h"
#include "helpers/expect.h"
#include "helpers/store_check.h"
#include "liber/kafka.h"
#include "liber/ubsp.h"
#include "serve/serve_child.h"

namespace liber {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::tiny_log;

// Runs scripts/kafka.sh with `args`; its output, or "" when it failed (the output printed).
std::string kafka_sh(std::vector<std::string> args) {
  args.insert(args.begin(), std::string(LIBER_SOURCE_DIR) + "/scripts/kafka.sh");
  testing::CommandResult r = testing::run_command(args);
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == ' ')) r.output.pop_back();
  if (r.status != 0) {
    std::fprintf(stderr, "%s failed:\n%s\n", args[1].c_str(), r.output.c_str());
    return "";
  }
  return r.output;
}

TEST(KafkaBroker, WorkerKilledAndBrokerRestartedEveryEventStoredOnce) {
  const char* cli = std::getenv("LIBER_TEST_CLI");
  ASSERT_NE(cli, nullptr);
  if (kafka_sh({"fetch"}).empty()) {
    if (std::getenv("CI")) FAIL() << "scripts/kafka.sh fetch failed";
    GTEST_SKIP() << "no Kafka jars (scripts/kafka.sh fetch needs Maven Central)";
  }
  TempDir dir{"liber-kafka-broker"};
  const std::string broker_dir = (dir / "broker").string();
  const std::string brokers = kafka_sh({"start", broker_dir});
  ASSERT_FALSE(brokers.empty());
  struct StopBroker {
    std::string dir;
    ~StopBroker() { kafka_sh({"stop", dir}); }
  } stop_broker{broker_dir};
  ASSERT_FALSE(kafka_sh({"topic", broker_dir, "events", "3"}).empty());

  const BehaviorLog log = tiny_log(30, 6, {"A", "B", "C"});
  PartitionRule rule;
  rule.count = 5;
  {
    auto store = open_rocksdb_store(dir / "store");
    Ingestor(*store, log, rule).ingest({});
  }
  testing::write_file(dir / "token", "kafka-token\n");

  // Numbered events: distinct (user, item, ts), each user's in time order, keyed by user.
  std::vector<Event> events;
  std::mt19937_64 rng(17);
  for (int i = 0; i < 3000; ++i)
    events.push_back(Event{static_cast<uint32_t>(1 + rng() % 6), static_cast<uint32_t>(1 + rng() % 30),
                           1000 + i, static_cast<float>(1 + rng() % 5), -1});
  std::atomic<std::size_t> produced{0};
  std::thread producer([&] {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    conf->set("bootstrap.servers", brokers, err);
    conf->set("enable.idempotence", "true", err);  // no duplicates in the topic across the restart
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    ASSERT_TRUE(p) << err;
    for (const Event& e : events) {
      const std::string key = log.users.ids.key(e.user);
      const std::string value = json{{"user", key}, {"item", log.items.ids.key(e.item)}, {"ts", e.ts},
                                     {"rating", e.rating}}.dump();
      while (p->produce("events", RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                        const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0,
                        nullptr) == RdKafka::ERR__QUEUE_FULL)
        p->poll(50);
      p->poll(0);
      ++produced;
      // ~170 events/s: the stream lasts ~18 s, across the worker runs and the broker restart.
      if (produced % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(60));
    }
    EXPECT_EQ(p->flush(120000), RdKafka::ERR_NO_ERROR);
  });

  auto spawn = [&](int run) {
    return testing::spawn_serve(cli, dir / "store", dir / "token", (dir / ("stderr." + std::to_string(run))).string(),
                                {"--no-learn", "--kafka", brokers, "--events-topic", "events", "--group", "liber",
                                 "--worker-id", "w1"});
  };
  auto stored = [&] {  // messages the store's offsets account for
    auto store = open_rocksdb_store(dir / "store", {.read_only = true});
    int64_t n = 0;
    for (const auto& [partition, next] : stored_kafka_offsets(*store, "events")) n += next;
    return n;
  };
  int kills = 0, progressed = 0;
  std::string progress;
  int64_t before = 0;
  for (int run = 0; run < 8; ++run) {
    const testing::ServeChild child = spawn(run);
    ASSERT_GT(child.port, 0) << testing::read_file(child.stderr_path);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000 + rng() % 1000));
    if (run == 3) {  // the broker dies under the worker and the producer, and comes back
      kafka_sh({"kill", broker_dir});
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      ASSERT_FALSE(kafka_sh({"start", broker_dir}).empty());
    }
    ::kill(child.pid, SIGKILL);
    int status = 0;
    ::waitpid(child.pid, &status, 0);
    ++kills;
    const int64_t now = stored();
    progressed += now > before ? 1 : 0;
    progress += " " + std::to_string(now) + "/" + std::to_string(produced.load());
    before = now;
  }
  EXPECT_GE(progressed, 4) << "stored/produced at each kill:" << progress;  // killed mid-stream
  producer.join();
  // The last run: until the stored offsets account for every message.
  const testing::ServeChild last = spawn(99);
  ASSERT_GT(last.port, 0) << testing::read_file(last.stderr_path);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (stored() < 3000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::kill(last.pid, SIGTERM);
  int status = 0;
  ::waitpid(last.pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testing::read_file(last.stderr_path);
  ASSERT_EQ(stored(), 3000) << testing::read_file(last.stderr_path);

  auto store = open_rocksdb_store(dir / "store", {.read_only = true});
  const std::size_t held = testing::expect_store_matches_partitioner(*store, log, events, rule);
  EXPECT_EQ(held, events.size());  // each event once
  std::fprintf(stderr, "kafka broker test: %d worker SIGKILLs (stored/produced at each:%s), 1 broker "
                       "kill and restart, %zu events, each stored once\n", kills, progress.c_str(), events.size());
}

}  // namespace
}  // namespace liber
