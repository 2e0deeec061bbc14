// The Kafka source against librdkafka's mock cluster (a real Kafka protocol server in
// process): every event applied once, offsets stored with the state and used on restart
// (a new consumer group, which has no committed offsets, reads nothing twice), bad
// messages counted and skipped; the output topic's records published and restored.
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
#include "helpers/event_json.h"
#include "helpers/expect.h"
#include "helpers/store_check.h"
#include "liber/error.h"
#include "liber/kafka.h"
#include "liber/ubsp.h"
#include "liber/uil.h"

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
  void create_topic(const std::string& topic, int partitions) {
    rd_kafka_mock_topic_create(rd_kafka_handle_mock_cluster(producer_->c_ptr()), topic.c_str(), partitions, 1);
  }
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
  std::string value(const Event& e) const { return testing::event_json(log, e); }
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


// The output topic against an independent reference, the records written to the first
// store: published to the partition of the user's events, restored into a store that lacks
// them (one partition holds exactly its users' records), a record stored but never
// acknowledged is published by the next restore, and a partition count that differs from
// the events topic's is refused.
TEST_F(KafkaTest, ChangelogRestoresTheRecordsAStoreLacks) {
  MockKafka kafka("events", 3);
  kafka.create_topic("records", 3);
  kafka.create_topic("records2", 2);
  const std::vector<Event> events = stream(10);
  for (const Event& e : events) kafka.send(log.users.ids.key(e.user), value(e));
  kafka.flush();
  consume(options(kafka.bootstraps(), "g"), [&](const KafkaStats& s) { return s.accepted >= events.size(); });
  KafkaOptions o = options(kafka.bootstraps(), "g");
  o.output_topic = "records";

  // Records as the pipeline stores them, under its registered variant: two per user; the
  // last user's second one is stored but never published (killed between the store write
  // and the delivery).
  Variant variant;
  variant.model = "http:m@fleet";
  register_variant(*store, variant);
  std::vector<InterestRecord> made;
  for (uint32_t u = 1; u < log.users.size(); ++u)
    for (uint32_t seq = 0; seq < 2; ++seq) {
      InterestRecord r;
      r.user = log.users.ids.key(u);
      r.seq = seq;
      r.variant = variant.id();
      r.ok = true;
      r.quality = "verified";
      r.summary = "summary of " + r.user + " partition " + std::to_string(seq);
      r.shift = "none";
      made.push_back(r);
      auto batch = store->new_batch();
      put_interest(*batch, r);
      store->write(*batch);
    }
  {
    KafkaChangelog out(*store, o);
    for (std::size_t i = 0; i + 1 < made.size(); ++i) out.publish(made[i]);
    // The first record made again (a record rewritten): the key twice on the topic.
    made[0].summary += " (again)";
    auto batch = store->new_batch();
    put_interest(*batch, made[0]);
    store->write(*batch);
    out.publish(made[0]);
    ASSERT_TRUE(out.flush(std::chrono::seconds(10)));
    EXPECT_EQ(out.stats().delivered, made.size());
    // The restore finds nothing to store here, and publishes the one never acknowledged.
    for (int32_t p = 0; p < 3; ++p) out.restore(p);
    ASSERT_TRUE(out.flush(std::chrono::seconds(10)));
    EXPECT_EQ(out.stats().restored, 0u);
    EXPECT_EQ(out.stats().restore_skipped, made.size());
    EXPECT_EQ(out.stats().delivered, made.size() + 1);
    // Restored again: every record is marked, nothing more is published.
    for (int32_t p = 0; p < 3; ++p) out.restore(p);
    ASSERT_TRUE(out.flush(std::chrono::seconds(10)));
    EXPECT_EQ(out.stats().published, made.size() + 1);
  }
  // A fresh store restores one partition: exactly the records of the users whose events
  // are in it, equal to the first store's (a key twice: its latest value, counted once).
  for (int32_t p = 0; p < 3; ++p) {
    auto fresh = open_rocksdb_store(dir / ("fresh" + std::to_string(p)));
    KafkaChangelog in(*fresh, o);
    in.restore(p);
    std::size_t want = 0;
    for (const InterestRecord& r : made) {
      const bool mine = kafka_partition_of(*store, r.user) == p;
      want += mine ? 1 : 0;
      const auto got = read_interest(*fresh, r.variant, r.user, r.seq);
      EXPECT_EQ(got.has_value(), mine) << r.user << " " << r.seq;
      if (got) EXPECT_EQ(got->to_json(), r.to_json());
    }
    EXPECT_EQ(in.stats().restored, want);
    EXPECT_EQ(stored_kafka_offsets(*fresh, "records").count(p), want > 0 ? 1u : 0u);  // where it stopped
  }
  o.output_topic = "records2";
  EXPECT_THROW(KafkaChangelog(*store, o), Error);
}


// A Kafka worker's store: `liber ingest --catalog-only` keeps the catalog (the users of the
// events file and the users file, the items) and the rule, and none of the events.
TEST(KafkaWorkerStore, IngestCatalogOnlyKeepsNoEvents) {
  const char* cli = std::getenv("LIBER_TEST_CLI");
  ASSERT_NE(cli, nullptr);
  TempDir dir{"liber-catalog-only"};
  testing::write_file(dir / "events.csv", "user_id,item_id,timestamp,rating\nu1,i1,1700000000,5\nu2,i2,1700000100,3\n");
  testing::write_file(dir / "items.csv", "item_id,title,year,genres\ni1,A,1995,Drama\ni2,B,1996,Comedy\ni3,C,1997,Drama\n");
  testing::write_file(dir / "users.csv", "user_id,age\nu1,20\nu2,30\nu3,40\n");
  const testing::CommandResult r = testing::run_command(
      {cli, "ingest", "--store", (dir / "st").string(), "--dataset", "generic", "--events",
       (dir / "events.csv").string(), "--items", (dir / "items.csv").string(), "--users",
       (dir / "users.csv").string(), "--rule-k", "7", "--catalog-only", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.output;
  auto store = open_rocksdb_store(dir / "st", {.read_only = true});
  ASSERT_TRUE(has_catalog(*store));
  const BehaviorLog log = load_behavior_log(*store);
  EXPECT_EQ(log.users.size(), 4u);  // row 0 is no user
  EXPECT_EQ(log.items.size(), 4u);
  EXPECT_TRUE(log.events.empty());
  EXPECT_EQ(PartitionRule::parse(*store->get(kMetaFamily, "rule")).count, 7u);
  std::size_t caches = 0;
  for_each_cache(*store, [&](const StoredCache&) { ++caches; });
  EXPECT_EQ(caches, 0u);
}

}  // namespace
}  // namespace liber
