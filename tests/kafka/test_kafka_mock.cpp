// The Kafka source against librdkafka's mock cluster (a real Kafka protocol server in
// process): every event applied once, offsets stored with the state and used on restart
// (a new consumer group, which has no committed offsets, reads nothing twice), bad
// messages counted and skipped.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/test_ubsp_util.h"
#include "fixtures.h"
#include "helpers/store_check.h"
#include "liber/kafka.h"
#include "liber/ubsp.h"

namespace liber {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::tiny_log;

// librdkafka's mock cluster with one topic, and a producer to it.
class MockKafka {
 public:
  MockKafka(const std::string& topic, int partitions) : topic_(topic) {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    conf->set("test.mock.num.brokers", "1", err);
    producer_.reset(RdKafka::Producer::create(conf.get(), err));
    if (!producer_) throw std::runtime_error("mock producer: " + err);
    rd_kafka_mock_cluster_t* mc = rd_kafka_handle_mock_cluster(producer_->c_ptr());
    rd_kafka_mock_topic_create(mc, topic.c_str(), partitions, 1);
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(mc);
  }
  ~MockKafka() { producer_->flush(5000); }
  void send(const std::string& key, const std::string& value) {
    producer_->produce(topic_, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                       const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0, nullptr);
    producer_->poll(0);
  }
  void flush() { producer_->flush(10000); }
  const std::string& bootstraps() const { return bootstraps_; }

 private:
  std::string topic_, bootstraps_;
  std::unique_ptr<RdKafka::Producer> producer_;
};

class KafkaTest : public ::testing::Test {
 protected:
  TempDir dir{"liber-kafka"};
  BehaviorLog log = tiny_log(30, 6, {"A", "B", "C"});
  PartitionRule rule;
  std::unique_ptr<Store> store;
  std::unique_ptr<Ingestor> ingestor;

  void SetUp() override {
    rule.count = 5;
    store = open_rocksdb_store(dir / "store");
    ingestor = std::make_unique<Ingestor>(*store, log, rule);
  }
  // The service's path; `pause` after each batch lets a test stop a consumer part way.
  DeliverFn deliver(std::chrono::milliseconds pause = {}) {
    return [this, pause](std::span<const Event> e, std::vector<AddStatus>* o,
                         const std::function<void(WriteBatch&)>& w) {
      const IngestStats s = ingestor->deliver(e, o, w);
      std::this_thread::sleep_for(pause);
      return s;
    };
  }
  KafkaOptions options(const std::string& brokers, const std::string& group) {
    KafkaOptions o;
    o.brokers = brokers;
    o.topic = "events";
    o.group = group;
    o.max_batch = 25;
    o.max_wait = std::chrono::milliseconds(50);
    return o;
  }
  // Runs a consumer until `until` holds of its stats (or 30 s), then stops it.
  KafkaStats consume(const KafkaOptions& o, const std::function<bool(const KafkaStats&)>& until,
                     std::chrono::milliseconds pause = {}) {
    KafkaIngest source(*store, log, o, deliver(pause));
    std::atomic<bool> stop{false};
    std::thread t([&] { source.run(stop); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!until(source.stats()) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop = true;
    t.join();
    return source.stats();
  }
  std::vector<Event> stream(int per_user) const {
    std::vector<Event> out;
    std::mt19937_64 rng(9);
    for (uint32_t u = 1; u < log.users.size(); ++u)
      for (int i = 0; i < per_user; ++i)
        out.push_back(Event{u, static_cast<uint32_t>(1 + rng() % (log.items.size() - 1)), 1000 + 60 * i,
                            static_cast<float>(1 + rng() % 5), -1});
    return time_ordered(out);
  }
  std::string value(const Event& e) const {
    return json{{"user", log.users.ids.key(e.user)}, {"item", log.items.ids.key(e.item)}, {"ts", e.ts},
                {"rating", e.rating}}
        .dump();
  }
};

TEST_F(KafkaTest, EveryEventOnceAndARestartReadsFromTheStoredOffsets) {
  MockKafka kafka("events", 3);
  const std::vector<Event> events = stream(30);  // 6 users x 30
  for (const Event& e : events) kafka.send(log.users.ids.key(e.user), value(e));
  kafka.flush();
  const uint64_t total = events.size();
  // The first consumer stops part way; its last batch is stored with its offsets.
  const KafkaStats first = consume(options(kafka.bootstraps(), "g1"),
                                   [](const KafkaStats& s) { return s.messages >= 30; },
                                   std::chrono::milliseconds(40));
  ASSERT_GE(first.messages, 30u);
  ASSERT_LT(first.messages, total);
  EXPECT_EQ(first.accepted, first.messages);
  uint64_t stored = 0;
  for (const auto& [partition, next] : stored_kafka_offsets(*store, "events")) stored += static_cast<uint64_t>(next);
  EXPECT_EQ(stored, first.messages);  // the offsets say exactly what the state holds
  // Another group has no committed offsets: it starts where the store says, not at 0.
  const KafkaStats second = consume(options(kafka.bootstraps(), "g2"), [&](const KafkaStats& s) {
    return s.messages >= total - first.messages && !s.lag.empty() &&
           std::all_of(s.lag.begin(), s.lag.end(), [](const auto& l) { return l.second == 0; });
  });
  EXPECT_EQ(second.messages, total - first.messages);
  EXPECT_EQ(second.duplicates, 0u);
  EXPECT_EQ(first.accepted + second.accepted, total);
  // The state: what the in-memory partitioner closes over the same events.
  const std::size_t held = testing::expect_store_matches_partitioner(*store, log, events, rule);
  EXPECT_EQ(held, total);
}

TEST_F(KafkaTest, BadMessagesAreCountedAndSkipped) {
  MockKafka kafka("events", 1);
  const std::vector<Event> events = stream(2);
  kafka.send("1", "not json");
  kafka.send("1", R"({"user": "nobody", "item": "1", "ts": 1000})");
  for (const Event& e : events) kafka.send(log.users.ids.key(e.user), value(e));
  kafka.flush();
  const KafkaStats s = consume(options(kafka.bootstraps(), "g"), [&](const KafkaStats& st) {
    return st.messages >= events.size() + 2 && st.batches > 0 && st.next_offset.count(0) && st.next_offset.at(0) == static_cast<int64_t>(events.size() + 2);
  });
  EXPECT_EQ(s.bad, 2u);
  EXPECT_EQ(s.accepted, events.size());
  EXPECT_EQ(stored_kafka_offsets(*store, "events").at(0), static_cast<int64_t>(events.size() + 2));
}

}  // namespace
}  // namespace liber
