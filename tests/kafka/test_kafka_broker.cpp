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
#include <map>
#include <random>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/test_ubsp_util.h"
#include "fixtures.h"
#include "helpers/event_json.h"
#include "helpers/expect.h"
#include "helpers/store_check.h"
#include "liber/kafka.h"
#include "liber/ubsp.h"
#include "liber/uil.h"
#include "llm/llm_server.h"
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

// A broker started in `dir` (scripts/kafka.sh start) and stopped at the end of the scope;
// `address` is empty when it did not start.
struct Broker {
  std::string dir, address;
  explicit Broker(const std::filesystem::path& d) : dir(d.string()), address(kafka_sh({"start", dir})) {}
  ~Broker() { kafka_sh({"stop", dir}); }
};

// Produces `events` to `topic`, keyed by user, `per_60ms` events every 60 ms; counts them
// in `produced`. Idempotent: no duplicates in the topic across a broker restart.
void produce_events(const std::string& brokers, const std::string& topic, const BehaviorLog& log,
                    const std::vector<Event>& events, int per_60ms, std::atomic<std::size_t>* produced) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("enable.idempotence", "true", err);
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  ASSERT_TRUE(p) << err;
  for (const Event& e : events) {
    const std::string key = log.users.ids.key(e.user);
    const std::string value = testing::event_json(log, e);
    while (p->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                      const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0,
                      nullptr) == RdKafka::ERR__QUEUE_FULL)
      p->poll(50);
    p->poll(0);
    if (++*produced % per_60ms == 0) std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  EXPECT_EQ(p->flush(120000), RdKafka::ERR_NO_ERROR);
}

// Numbered events: distinct (user, item, ts), each user's in time order.
std::vector<Event> numbered_events(int n, uint32_t users, uint32_t items, uint64_t seed) {
  std::vector<Event> events;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n; ++i)
    events.push_back(Event{static_cast<uint32_t>(1 + rng() % users), static_cast<uint32_t>(1 + rng() % items),
                           1000 + i, static_cast<float>(1 + rng() % 5), -1});
  return events;
}

TEST(KafkaBroker, WorkerKilledAndBrokerRestartedEveryEventStoredOnce) {
  const char* cli = std::getenv("LIBER_TEST_CLI");
  ASSERT_NE(cli, nullptr);
  if (kafka_sh({"fetch"}).empty()) {
    if (std::getenv("CI")) FAIL() << "scripts/kafka.sh fetch failed";
    GTEST_SKIP() << "no Kafka jars (scripts/kafka.sh fetch needs Maven Central)";
  }
  TempDir dir{"liber-kafka-broker"};
  const Broker broker(dir / "broker");
  const std::string& broker_dir = broker.dir;
  const std::string& brokers = broker.address;
  ASSERT_FALSE(brokers.empty());
  ASSERT_FALSE(kafka_sh({"topic", broker_dir, "events", "3"}).empty());

  const BehaviorLog log = tiny_log(30, 6, {"A", "B", "C"});
  PartitionRule rule;
  rule.count = 5;
  {
    auto store = open_rocksdb_store(dir / "store");
    Ingestor(*store, log, rule).ingest({});
  }
  testing::write_file(dir / "token", "kafka-token\n");

  const std::vector<Event> events = numbered_events(3000, 6, 30, 17);
  std::mt19937_64 rng(17);
  std::atomic<std::size_t> produced{0};
  // ~170 events/s: the stream lasts ~18 s, across the worker runs and the broker restart.
  std::thread producer([&] { produce_events(brokers, "events", log, events, 10, &produced); });

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


// The (key, value) of every message of `topic`, from the beginning of each partition to
// the end it has now (a tombstone's value is empty).
std::vector<std::pair<std::string, std::string>> read_topic(const std::string& brokers, const std::string& topic,
                                                            int partitions) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("group.id", "liber-test-reader", err);
  conf->set("enable.auto.commit", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  std::vector<std::pair<std::string, std::string>> out;
  if (!c) return out;
  std::vector<RdKafka::TopicPartition*> tps;
  int64_t left = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    if (c->query_watermark_offsets(topic, p, &low, &high, 10000) != RdKafka::ERR_NO_ERROR) continue;
    left += high - low;
    tps.push_back(RdKafka::TopicPartition::create(topic, p, low));
  }
  c->assign(tps);
  RdKafka::TopicPartition::destroy(tps);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (static_cast<int64_t>(out.size()) < left && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(c->consume(500));
    if (m->err() == RdKafka::ERR_NO_ERROR)  // copied: the consumer outlives no message of its own
      out.emplace_back(m->key() ? *m->key() : std::string(),
                       std::string(static_cast<const char*>(m->payload()), m->payload() ? m->len() : 0));
  }
  c->close();
  return out;
}

// The chaos test: three workers (liber serve --kafka, each its own store) on a
// 6-partition events topic, their pipelines learning every closed partition through an
// OpenAI-compatible server that counts the calls by prompt, records going to a compacted
// output topic. One worker is SIGKILLed mid-stream (its partitions move to the others after
// its session times out, which rebuild them from the events topic and restore its records
// from the output topic) and started again later (it takes them back); the broker is killed
// and restarted once. At the end every event is in its partition owner's store exactly
// once, every closed partition was learned once (each prompt sent once, but for calls in
// flight at the kill), the output topic holds one key per closed partition, and a fresh
// worker rebuilds every partition from the two topics without one LLM call.
TEST(KafkaBroker, ChaosThreeWorkersEveryPartitionLearnedOnce) {
  const char* cli = std::getenv("LIBER_TEST_CLI");
  ASSERT_NE(cli, nullptr);
  if (std::string why = test::LlmServer::unavailable_reason(); !why.empty()) {  // the encoder
    if (std::getenv("CI")) FAIL() << why;
    GTEST_SKIP() << why;
  }
  if (kafka_sh({"fetch"}).empty()) {
    if (std::getenv("CI")) FAIL() << "scripts/kafka.sh fetch failed";
    GTEST_SKIP() << "no Kafka jars (scripts/kafka.sh fetch needs Maven Central)";
  }
  TempDir dir{"liber-kafka-chaos"};
  const Broker broker(dir / "broker");
  const std::string& broker_dir = broker.dir;
  const std::string& brokers = broker.address;
  ASSERT_FALSE(brokers.empty());
  constexpr int kPartitions = 6;
  ASSERT_FALSE(kafka_sh({"topic", broker_dir, "events", std::to_string(kPartitions)}).empty());
  ASSERT_FALSE(kafka_sh({"topic", broker_dir, "records", std::to_string(kPartitions), "compact"}).empty());
  auto llm = test::LlmServer::python_script(std::filesystem::path(LIBER_SOURCE_DIR) / "tests/kafka/interest_server.py");
  ASSERT_TRUE(llm->start(30)) << llm->log_path();
  httplib::Client llm_client("127.0.0.1", llm->port());
  auto prompts = [&] {  // prompt hash -> calls
    std::map<std::string, int> out;
    auto r = llm_client.Get("/calls");
    if (!r || r->status != 200) return out;
    const json body = json::parse(r->body);
    for (const auto& [k, v] : body.at("prompts").items()) out[k] = v.get<int>();
    return out;
  };

  const BehaviorLog log = tiny_log(60, 18, {"Drama", "Comedy", "Horror"});
  PartitionRule rule;
  rule.count = 8;
  const std::vector<Event> events = numbered_events(1800, 18, 60, 23);
  const MemoryRun ref = partition_in_memory(log, events, rule);
  const std::size_t closed = ref.partitions.size();
  auto make_store = [&](const std::string& name) {
    auto store = open_rocksdb_store(dir / name);
    Ingestor(*store, log, rule).ingest({});
  };
  for (const char* w : {"w1", "w2", "w3", "fresh"}) make_store(w);
  testing::write_file(dir / "token", "kafka-token\n");

  auto spawn = [&](const std::string& worker, const std::string& group, int run) {
    return testing::spawn_serve(
        cli, dir / worker, dir / "token", (dir / (worker + ".stderr." + std::to_string(run))).string(),
        {"--kafka", brokers, "--events-topic", "events", "--output-topic", "records", "--group", group,
         "--worker-id", worker, "--kafka-set", "session.timeout.ms=6000", "--engine", "http", "--base-url",
         llm->base_url(), "--api-model", "interests", "--candidates", "1", "--retries", "0",
         "--encoder-threads", "1", "--batch-users", "4"});
  };
  auto offsets = [&](const std::string& worker, const std::string& topic) {
    auto store = open_rocksdb_store(dir / worker, {.read_only = true});
    return stored_kafka_offsets(*store, topic);
  };
  auto stop = [&](const testing::ServeChild& c) {
    ::kill(c.pid, SIGTERM);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testing::read_file(c.stderr_path);
  };

  std::atomic<std::size_t> produced{0};
  std::thread producer([&] { produce_events(brokers, "events", log, events, 6, &produced); });  // ~100/s
  std::map<std::string, testing::ServeChild> workers;
  for (const char* w : {"w1", "w2", "w3"}) {
    workers[w] = spawn(w, "liber", 0);
    ASSERT_GT(workers[w].pid, 0);
  }
  std::this_thread::sleep_for(std::chrono::seconds(4));
  ::kill(workers["w2"].pid, SIGKILL);  // mid-stream, its pipeline mid-run
  ::waitpid(workers["w2"].pid, nullptr, 0);
  const std::size_t produced_at_kill = produced;
  std::this_thread::sleep_for(std::chrono::seconds(9));  // past its session: w1 and w3 take over
  kafka_sh({"kill", broker_dir});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_FALSE(kafka_sh({"start", broker_dir}).empty());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  workers["w2"] = spawn("w2", "liber", 1);  // takes its partitions back
  ASSERT_GT(workers["w2"].pid, 0) << testing::read_file(workers["w2"].stderr_path);
  producer.join();

  // Who holds each partition now, from the workers' /metrics.
  auto owners = [&] {
    std::map<int32_t, std::string> out;
    for (auto& [name, c] : workers) {
      httplib::Client client("127.0.0.1", c.port);
      auto r = client.Get("/metrics", {{"Authorization", "Bearer kafka-token"}});
      if (!r || r->status != 200) continue;
      const std::string prefix = "liber_kafka_partition_owned{topic=\"events\",partition=\"";
      for (std::size_t at = 0; (at = r->body.find(prefix, at)) != std::string::npos; ++at) {
        const std::size_t p0 = at + prefix.size(), close = r->body.find('}', p0);
        if (r->body.compare(close + 1, 2, " 1") == 0) out[std::stoi(r->body.substr(p0))] = name;
      }
    }
    return out;
  };
  auto keys_on_topic = [&] {
    std::map<std::string, std::vector<std::string>> keys;  // key -> values, in log order
    for (auto& [key, value] : read_topic(brokers, "records", kPartitions))
      if (!value.empty()) keys[key].push_back(std::move(value));
    return keys;
  };
  // Each user's owner (by the partition of the user's events), when every partition has one.
  auto user_owners = [&](const std::map<int32_t, std::string>& held) {
    std::map<uint32_t, std::string> out;
    if (held.size() != static_cast<std::size_t>(kPartitions)) return out;
    for (uint32_t u = 1; u < log.users.size(); ++u)
      for (const char* w : {"w1", "w2", "w3"}) {
        auto store = open_rocksdb_store(dir / w, {.read_only = true});
        if (const auto p = kafka_partition_of(*store, log.users.ids.key(u))) {
          out[u] = held.at(*p);
          break;
        }
      }
    return out;
  };
  // Done: every owner has all its partitions' events and a record for each closed partition.
  auto complete = [&](const std::map<uint32_t, std::string>& by_user) {
    if (by_user.size() + 1 != log.users.size()) return false;
    for (const auto& [u, w] : by_user) {
      auto store = open_rocksdb_store(dir / w, {.read_only = true});
      std::size_t want = 0, have = 0;
      for (const Partition& p : ref.partitions) want += p.user == u ? 1 : 0;
      if (read_partitions(*store, log.users.ids.key(u)).size() != want) return false;
      for (const Variant& v : list_variants(*store))
        for (const InterestRecord& r : read_interests(*store, v.id(), log.users.ids.key(u)))
          have += r.call_failed() ? 0 : 1;
      if (have < want) return false;
    }
    return true;
  };
  std::map<int32_t, std::string> held;
  std::map<uint32_t, std::string> owner_of;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  do {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    held = owners();
    owner_of = user_owners(held);
  } while (!(complete(owner_of) && keys_on_topic().size() >= closed) && std::chrono::steady_clock::now() < deadline);
  for (auto& [name, c] : workers) stop(c);
  ASSERT_EQ(held.size(), static_cast<std::size_t>(kPartitions));
  ASSERT_EQ(owner_of.size() + 1, log.users.size());

  // Events: each user's state in the store of its partition's owner is the in-memory
  // partitioner's, every event once.
  std::size_t held_events = 0;
  for (const auto& [u, w] : owner_of) {
    auto store = open_rocksdb_store(dir / w, {.read_only = true});
    held_events += testing::expect_user_matches_partitioner(*store, log, ref, u);
  }
  EXPECT_EQ(held_events, events.size());

  // Records: one key per closed partition on the output topic, the latest value the
  // owner's record.
  const auto keys = keys_on_topic();
  EXPECT_EQ(keys.size(), closed);
  std::size_t repeated = 0;
  for (const auto& [key, values] : keys) {
    repeated += values.size() - 1;
    const InterestRecord r = InterestRecord::from_json(values.back());
    EXPECT_TRUE(r.ok) << key;
    auto store = open_rocksdb_store(dir / owner_of.at(log.users.ids.find(r.user)), {.read_only = true});
    const auto mine = read_interest(*store, r.variant, r.user, r.seq);
    ASSERT_TRUE(mine) << key;
    EXPECT_EQ(mine->summary, r.summary) << key;
  }
  // LLM calls: one prompt per closed partition; a prompt sent twice is a partition learned
  // twice, which only a call in flight at the SIGKILL may explain (8 in flight at most).
  const auto sent = prompts();
  std::size_t calls = 0, twice = 0;
  for (const auto& [hash, n] : sent) calls += n, twice += n > 1 ? n - 1 : 0;
  EXPECT_EQ(sent.size(), closed);
  EXPECT_LE(twice, 8u);
  // The takeovers restored records from the output topic (each worker logs its restores).
  std::size_t restored = 0;
  for (const char* log_file : {"w1.stderr.0", "w3.stderr.0", "w2.stderr.1"}) {
    const std::string text = testing::read_file(dir / log_file);
    for (std::size_t at = 0; (at = text.find(" records restored", at)) != std::string::npos; ++at) {
      const std::size_t colon = text.rfind(": ", at);
      restored += std::stoul(text.substr(colon + 2, at - colon - 2));
    }
  }
  EXPECT_GT(restored, 0u) << "no partition changed hands with records to restore";

  // A fresh worker in a group of its own rebuilds every partition from the two topics.
  const auto t0 = std::chrono::steady_clock::now();
  const testing::ServeChild fresh = spawn("fresh", "rebuild", 0);
  ASSERT_GT(fresh.pid, 0);
  auto fresh_done = [&] {
    int64_t n = 0;
    for (const auto& [p, next] : offsets("fresh", "events")) n += next;
    return n == 1800 && offsets("fresh", "records").size() == static_cast<std::size_t>(kPartitions);
  };
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fresh_done() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const double rebuild_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // its pipeline's first runs
  stop(fresh);
  ASSERT_TRUE(fresh_done()) << testing::read_file(fresh.stderr_path);
  auto store = open_rocksdb_store(dir / "fresh", {.read_only = true});
  EXPECT_EQ(testing::expect_store_matches_partitioner(*store, log, events, rule), events.size());
  std::size_t records = 0;
  for_each_interest(*store, "", [&](const InterestRecord& r) { records += r.ok ? 1 : 0; });
  EXPECT_EQ(records, closed);
  std::size_t calls_after = 0;
  for (const auto& [hash, n] : prompts()) calls_after += n;
  EXPECT_EQ(calls_after, calls) << "the fresh worker called the LLM";
  std::fprintf(stderr,
               "kafka chaos test: 3 workers, %d partitions, %zu events (worker w2 SIGKILLed after %zu, "
               "restarted; broker killed and restarted once); %zu partitions closed, %zu LLM calls (%zu "
               "prompts sent twice), %zu records on the output topic (%zu repeated values of a key), %zu restored "
               "by takeovers; a fresh "
               "worker rebuilt all %zu partitions' state and %zu records in %.1f s with 0 LLM calls\n",
               kPartitions, events.size(), produced_at_kill, closed, calls, twice, keys.size(), repeated, restored,
               static_cast<std::size_t>(kPartitions), records, rebuild_s);
}

}  // namespace
}  // namespace liber
