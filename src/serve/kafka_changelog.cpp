// The output topic of liber serve (include/liber/kafka.h): interest records produced by an
// idempotent producer, and read back into a store that lacks them.
#include <librdkafka/rdkafkacpp.h>

#include <mutex>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "liber/common/hash.h"
#include "liber/error.h"
#include "liber/kafka.h"
#include "liber/log.h"
#include "liber/serve/kafka_conf.h"
#include "liber/uil.h"

namespace liber {

namespace {

using Clock = std::chrono::steady_clock;


std::string record_key(const InterestRecord& r) { return fmt::format("{}|{}|{}", r.user, r.seq, r.variant); }

std::string mark_key(std::string_view variant, uint32_t seq, std::string_view user) {
  return fmt::format("pub/{}/{}/{}", variant, seq, user);
}

// "<user>|<seq>|<variant>", read from the right: a user id may hold '|'.
bool parse_record_key(std::string_view key, std::string* user, uint32_t* seq, std::string* variant) {
  const auto b = key.rfind('|');
  if (b == std::string_view::npos || b == 0) return false;
  const auto a = key.rfind('|', b - 1);
  if (a == std::string_view::npos) return false;
  try {
    *seq = static_cast<uint32_t>(std::stoul(std::string(key.substr(a + 1, b - a - 1))));
  } catch (const std::exception&) {
    return false;
  }
  *user = std::string(key.substr(0, a));
  *variant = std::string(key.substr(b + 1));
  return true;
}

std::string hash_text(std::string_view value) { return fmt::format("{:016x}", fnv1a(value)); }

int partition_count(RdKafka::Handle& handle, const std::string& topic) {
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(&handle, topic, nullptr, err));
  if (!t) throw Error(ErrorKind::Config, fmt::format("Kafka topic {}: {}", topic, err));
  RdKafka::Metadata* raw = nullptr;
  const auto e = handle.metadata(false, t.get(), &raw, 10000);
  std::unique_ptr<RdKafka::Metadata> md(raw);
  if (e != RdKafka::ERR_NO_ERROR || !md || md->topics()->empty())
    throw Error(ErrorKind::Config, fmt::format("Kafka: cannot describe topic {}: {}", topic, RdKafka::err2str(e)));
  const RdKafka::TopicMetadata* tm = md->topics()->front();
  if (tm->err() != RdKafka::ERR_NO_ERROR)
    throw Error(ErrorKind::Config, fmt::format("Kafka topic {}: {}", topic, RdKafka::err2str(tm->err())));
  return static_cast<int>(tm->partitions()->size());
}

}  // namespace

struct KafkaChangelog::Impl : public RdKafka::DeliveryReportCb {
  Store& store;
  KafkaOptions opt;
  std::unique_ptr<RdKafka::Producer> producer;
  std::thread poller;  // serves the delivery reports
  std::atomic<bool> stopping{false};
  mutable std::mutex mutex;
  ChangelogStats st;
  std::vector<std::pair<std::string, std::string>> marks;  // delivered, not yet stored

  Impl(Store& s, const KafkaOptions& o) : store(s), opt(o) {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    serve::set_kafka_conf(*conf, "bootstrap.servers", opt.brokers);
    // No duplicates or reordering from the producer's own retries; acks=all.
    serve::set_kafka_conf(*conf, "enable.idempotence", "true");
    serve::set_kafka_conf(*conf, "linger.ms", "5");
    // The user's settings (security, timeouts) too, but for the consumer's own, which a
    // producer would only warn about.
    for (const auto& [k, v] : opt.config)
      if (k.rfind("group.", 0) != 0 && k.rfind("session.", 0) != 0 && k != "auto.offset.reset")
        serve::set_kafka_conf(*conf, k, v);
    std::string err;
    if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err) != RdKafka::Conf::CONF_OK)
      throw Error(ErrorKind::Internal, "Kafka: dr_cb: " + err);
    producer.reset(RdKafka::Producer::create(conf.get(), err));
    if (!producer) throw Error(ErrorKind::Config, "Kafka: cannot create the producer: " + err);
    const int in = partition_count(*producer, opt.topic), out = partition_count(*producer, opt.output_topic);
    if (in != out)
      throw Error(ErrorKind::Config,
                  fmt::format("Kafka: the output topic {} has {} partitions, the events topic {} has {}: "
                              "a user's records go to the partition of their events, so they must match",
                              opt.output_topic, out, opt.topic, in));
    poller = std::thread([this] {
      while (!stopping) {
        producer->poll(100);
        store_marks();
      }
    });
  }

  ~Impl() override {
    stopping = true;
    if (poller.joinable()) poller.join();
    producer->flush(10000);
    store_marks();
  }

  void dr_cb(RdKafka::Message& m) override {
    std::lock_guard<std::mutex> lock(mutex);
    std::string user, variant;
    uint32_t seq = 0;
    if (m.err() != RdKafka::ERR_NO_ERROR || !m.key() || !parse_record_key(*m.key(), &user, &seq, &variant)) {
      ++st.failed;
      log_warning(fmt::format("Kafka: a record was not delivered to {}: {}", opt.output_topic, m.errstr()));
      return;
    }
    ++st.delivered;
    marks.emplace_back(mark_key(variant, seq, user),
                       hash_text(std::string_view(static_cast<const char*>(m.payload()), m.len())));
  }

  void store_marks() {
    std::vector<std::pair<std::string, std::string>> todo;
    {
      std::lock_guard<std::mutex> lock(mutex);
      todo.swap(marks);
    }
    if (todo.empty()) return;
    auto batch = store.new_batch();
    for (const auto& [k, v] : todo) batch->put(kKafkaFamily, k, v);
    store.write(*batch);
  }

  void produce(const InterestRecord& r, int32_t partition, const std::string& value) {
    const std::string key = record_key(r);
    for (;;) {
      const auto e = producer->produce(opt.output_topic, partition, RdKafka::Producer::RK_MSG_COPY,
                                       const_cast<char*>(value.data()), value.size(), key.data(), key.size(),
                                       0, nullptr);
      if (e == RdKafka::ERR_NO_ERROR) break;
      if (e != RdKafka::ERR__QUEUE_FULL)
        throw Error(ErrorKind::Network, fmt::format("Kafka: produce to {}: {}", opt.output_topic, RdKafka::err2str(e)));
      producer->poll(100);  // the local queue is full: wait for deliveries
    }
    std::lock_guard<std::mutex> lock(mutex);
    ++st.published;
  }

  void publish(const InterestRecord& r) {
    if (r.call_failed()) return;  // still pending: learned again, then published
    const auto partition = kafka_partition_of(store, r.user);
    if (!partition) {
      std::lock_guard<std::mutex> lock(mutex);
      ++st.unrouted;
      return;
    }
    produce(r, *partition, r.to_json());
  }

  void restore(int32_t partition) {
    const auto t0 = Clock::now();
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    serve::set_kafka_conf(*conf, "bootstrap.servers", opt.brokers);
    serve::set_kafka_conf(*conf, "group.id", opt.group + ".changelog");  // never joined: the partition is assigned
    serve::set_kafka_conf(*conf, "enable.auto.commit", "false");
    serve::set_kafka_conf(*conf, "enable.partition.eof", "true");
    for (const auto& [k, v] : opt.config)
      if (k.rfind("group.", 0) != 0) serve::set_kafka_conf(*conf, k, v);
    std::string err;
    std::unique_ptr<RdKafka::KafkaConsumer> reader(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!reader) throw Error(ErrorKind::Config, "Kafka: cannot create the changelog reader: " + err);
    int64_t low = 0, high = 0;
    if (const auto e = reader->query_watermark_offsets(opt.output_topic, partition, &low, &high, 10000);
        e != RdKafka::ERR_NO_ERROR)
      throw Error(ErrorKind::Network, fmt::format("Kafka: the end of {}/{}: {}", opt.output_topic, partition,
                                                  RdKafka::err2str(e)));
    const auto stored = stored_kafka_offsets(store, opt.output_topic);
    int64_t next = std::max(low, stored.count(partition) ? stored.at(partition) : low);
    uint64_t restored = 0, skipped = 0;
    if (next < high) {
      std::vector<RdKafka::TopicPartition*> tps{RdKafka::TopicPartition::create(opt.output_topic, partition, next)};
      reader->assign(tps);
      RdKafka::TopicPartition::destroy(tps);
      auto batch = store.new_batch();
      std::unordered_set<std::string> pending;  // marks of the records in `batch`
      auto write = [&] {
        batch->put(kMetaFamily, fmt::format("kafka/{}/{}", opt.output_topic, partition), std::to_string(next));
        store.write(*batch);
        batch->clear();
        pending.clear();
      };
      auto last_progress = Clock::now();
      while (next < high) {
        std::unique_ptr<RdKafka::Message> m(reader->consume(1000));
        if (m->err() == RdKafka::ERR__TIMED_OUT || m->err() == RdKafka::ERR__PARTITION_EOF) {
          // A compacted log may end below the high watermark (its last offsets removed).
          if (m->err() == RdKafka::ERR__PARTITION_EOF) break;
          if (Clock::now() - last_progress > std::chrono::seconds(60))
            throw Error(ErrorKind::Network, fmt::format("Kafka: restoring {}/{} stalled at offset {} (end {})",
                                                        opt.output_topic, partition, next, high));
          continue;
        }
        if (m->err() != RdKafka::ERR_NO_ERROR)
          throw Error(ErrorKind::Network,
                      fmt::format("Kafka: restoring {}/{}: {}", opt.output_topic, partition, m->errstr()));
        last_progress = Clock::now();
        next = m->offset() + 1;
        if (!m->payload()) continue;  // a tombstone
        const std::string_view value(static_cast<const char*>(m->payload()), m->len());
        InterestRecord r;
        try {
          r = InterestRecord::from_json(value);
        } catch (const std::exception& e) {
          log_warning(fmt::format("Kafka {}/{} offset {}: not a record, skipped ({})", opt.output_topic, partition,
                                  m->offset(), e.what()));
          continue;
        }
        // A key seen earlier in this batch (published twice) is not in the store yet: its
        // later value replaces it, and it counts once.
        const std::string mark = mark_key(r.variant, r.seq, r.user);
        const bool again = pending.count(mark) > 0;
        const auto have = again ? std::nullopt : read_interest(store, r.variant, r.user, r.seq);
        if (have && !have->call_failed()) {
          ++skipped;
        } else {
          put_interest(*batch, r);
          batch->put(kKafkaFamily, mark, hash_text(value));
          restored += again ? 0 : 1;
          pending.insert(mark);
        }
        if (batch->count() >= 512) write();
      }
      write();
      reader->unassign();
    }
    reader->close();
    // Records stored but never acknowledged (killed between the two): published now.
    uint64_t republished = 0;
    const std::vector<Variant> variants = list_variants(store);
    for (const std::string& user : kafka_partition_users(store, partition))
      for (const Variant& v : variants)
        for (const InterestRecord& r : read_interests(store, v.id(), user)) {
          if (r.call_failed()) continue;
          const std::string value = r.to_json();
          const auto mark = store.get(kKafkaFamily, mark_key(r.variant, r.seq, r.user));
          if (mark && *mark == hash_text(value)) continue;
          produce(r, partition, value);
          ++republished;
        }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    log_info(fmt::format("Kafka: {}/{}: {} records restored, {} already stored, {} published again ({:.2f} s)",
                         opt.output_topic, partition, restored, skipped, republished, s));
    std::lock_guard<std::mutex> lock(mutex);
    st.restored += restored;
    st.restore_skipped += skipped;
    st.restore_s += s;
  }
};

KafkaChangelog::KafkaChangelog(Store& store, const KafkaOptions& options) {
  if (options.brokers.empty() || options.topic.empty() || options.output_topic.empty())
    throw Error(ErrorKind::Config, "Kafka output: brokers, the events topic and the output topic are all needed");
  impl_ = std::make_unique<Impl>(store, options);
}
KafkaChangelog::~KafkaChangelog() = default;

void KafkaChangelog::publish(const InterestRecord& record) { impl_->publish(record); }

bool KafkaChangelog::flush(std::chrono::milliseconds timeout) {
  const bool done = impl_->producer->flush(static_cast<int>(timeout.count())) == RdKafka::ERR_NO_ERROR;
  impl_->store_marks();
  return done;
}

void KafkaChangelog::restore(int32_t partition) { impl_->restore(partition); }

ChangelogStats KafkaChangelog::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->st;
}

}  // namespace liber
