// The Kafka source of liber serve (include/liber/kafka.h): librdkafka's high-level consumer,
// offsets kept in the store beside the state they produced.
#include "liber/kafka.h"

#include <librdkafka/rdkafkacpp.h>

#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/log.h"
#include "liber/serve/kafka_conf.h"
#include "liber/serve.h"

namespace liber {

namespace {

std::string offset_key(const std::string& topic, int32_t partition) {
  return fmt::format("kafka/{}/{}", topic, partition);
}


}  // namespace

std::optional<int32_t> kafka_partition_of(Store& store, std::string_view user) {
  const auto v = store.get(kKafkaFamily, fmt::format("u/{}", user));
  if (!v) return std::nullopt;
  return std::stoi(*v);
}

std::vector<std::string> kafka_partition_users(Store& store, int32_t partition) {
  std::vector<std::string> out;
  const std::string prefix = fmt::format("p/{}/", partition);
  store.scan(kKafkaFamily, prefix, [&](std::string_view k, std::string_view) {
    out.emplace_back(k.substr(prefix.size()));
    return true;
  });
  return out;
}

std::map<int32_t, int64_t> stored_kafka_offsets(Store& store, const std::string& topic) {
  std::map<int32_t, int64_t> out;
  const std::string prefix = fmt::format("kafka/{}/", topic);
  store.scan(kMetaFamily, prefix, [&](std::string_view k, std::string_view v) {
    out[std::stoi(std::string(k.substr(prefix.size())))] = std::stoll(std::string(v));
    return true;
  });
  return out;
}

struct KafkaIngest::Impl : public RdKafka::RebalanceCb {
  Store& store;
  const BehaviorLog& catalog;
  KafkaOptions opt;
  DeliverFn deliver;
  PartitionsFn assigned, revoked;
  std::vector<int32_t> held;  // assigned now
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  bool closed = false;
  mutable std::mutex mutex;  // stats
  KafkaStats st;

  // The batch in hand: its events (each one's Kafka partition) and, per partition, the
  // offset after its last message.
  std::vector<Event> events;
  std::vector<int32_t> event_partition;
  std::map<int32_t, int64_t> batch_next;
  // The users whose partition index entry this process wrote or read: user row -> partition.
  std::unordered_map<uint32_t, int32_t> indexed;

  Impl(Store& s, const BehaviorLog& c, KafkaOptions o, DeliverFn d)
      : store(s), catalog(c), opt(std::move(o)), deliver(std::move(d)) {
    if (opt.brokers.empty() || opt.topic.empty() || opt.group.empty())
      throw Error(ErrorKind::Config, "Kafka: brokers, topic and group are all needed");
    if (opt.max_batch < 1) opt.max_batch = 1;
    connect();
  }

  // A consumer in the group, subscribed to the events topic.
  void connect() {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    serve::set_kafka_conf(*conf, "bootstrap.servers", opt.brokers);
    serve::set_kafka_conf(*conf, "group.id", opt.group);
    // The store holds the offsets that count; Kafka's are committed by hand after each
    // stored batch, for lag tools only.
    serve::set_kafka_conf(*conf, "enable.auto.commit", "false");
    serve::set_kafka_conf(*conf, "enable.auto.offset.store", "false");
    serve::set_kafka_conf(*conf, "auto.offset.reset", "earliest");
    if (!opt.worker_id.empty()) serve::set_kafka_conf(*conf, "group.instance.id", opt.worker_id);
    for (const auto& [k, v] : opt.config) serve::set_kafka_conf(*conf, k, v);
    std::string err;
    if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) != RdKafka::Conf::CONF_OK)
      throw Error(ErrorKind::Internal, "Kafka: rebalance_cb: " + err);
    consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer) throw Error(ErrorKind::Config, "Kafka: cannot create the consumer: " + err);
    closed = false;
    if (const auto e = consumer->subscribe({opt.topic}); e != RdKafka::ERR_NO_ERROR)
      throw Error(ErrorKind::Config, fmt::format("Kafka: subscribe {}: {}", opt.topic, RdKafka::err2str(e)));
  }

  ~Impl() override { close(); }

  // Leaves the group: the revocation runs (and its hook) while the caller is still alive.
  void close() {
    if (consumer && !closed) consumer->close();
    closed = true;
  }

  static std::vector<int32_t> numbers(const std::vector<RdKafka::TopicPartition*>& partitions) {
    std::vector<int32_t> out;
    for (const RdKafka::TopicPartition* tp : partitions) out.push_back(tp->partition());
    return out;
  }

  // Assignment: every partition starts at the offset the store holds (else the earliest);
  // revocation: the batch in hand is stored first, so the next owner starts after it.
  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++st.rebalances;
    }
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      held = numbers(partitions);
      if (assigned) assigned(held);
      const auto stored = stored_kafka_offsets(store, opt.topic);
      std::lock_guard<std::mutex> lock(mutex);
      for (RdKafka::TopicPartition* tp : partitions) {
        const auto it = stored.find(tp->partition());
        tp->set_offset(it != stored.end() ? it->second : RdKafka::Topic::OFFSET_BEGINNING);
        st.next_offset[tp->partition()] = it != stored.end() ? it->second : 0;
      }
      c->assign(partitions);
    } else {
      flush();
      if (revoked) revoked(numbers(partitions));
      held.clear();
      c->unassign();
      std::lock_guard<std::mutex> lock(mutex);
      st.next_offset.clear();
      st.lag.clear();
    }
  }

  void take(RdKafka::Message& m) {
    const int32_t partition = m.partition();
    batch_next[partition] = m.offset() + 1;
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++st.messages;
    }
    const std::string_view value(static_cast<const char*>(m.payload()), m.len());
    try {
      DecodedEvents d = decode_events(value, catalog.items, catalog.users, 1);
      if (d.events.size() == 1) {
        events.push_back(d.events.front());
        event_partition.push_back(partition);
        return;
      }
      const std::string why = d.bad.empty() ? "no event" : fmt::format("{}: {}", d.bad.front().field, d.bad.front().reason);
      log_warning(fmt::format("Kafka {}/{} offset {}: bad event skipped ({})", opt.topic, partition, m.offset(), why));
    } catch (const Error& e) {
      log_warning(fmt::format("Kafka {}/{} offset {}: bad message skipped ({})", opt.topic, partition, m.offset(), e.what()));
    }
    std::lock_guard<std::mutex> lock(mutex);
    ++st.bad;
  }

  // Stores the batch in hand with its offsets, atomically; then tells Kafka (advisory).
  void flush() {
    if (batch_next.empty()) return;
    // Users new to the partition index (or whose events moved to another partition).
    std::unordered_map<uint32_t, std::pair<int32_t, std::optional<int32_t>>> index;  // -> now, before
    for (std::size_t i = 0; i < events.size(); ++i) {
      const uint32_t user = events[i].user;
      const auto it = indexed.find(user);
      if ((it == indexed.end() || it->second != event_partition[i]) && !index.count(user)) {
        std::optional<int32_t> before;
        if (it != indexed.end()) before = it->second;
        else before = kafka_partition_of(store, catalog.users.ids.key(user));
        index.emplace(user, std::make_pair(event_partition[i], before));
      }
    }
    std::vector<AddStatus> outcomes;
    const IngestStats s = deliver(events, &outcomes, [&](WriteBatch& b) {
      for (const auto& [partition, next] : batch_next)
        b.put(kMetaFamily, offset_key(opt.topic, partition), std::to_string(next));
      for (const auto& [user, now_before] : index) {
        const auto& [now, before] = now_before;
        if (before == now) continue;
        const std::string& id = catalog.users.ids.key(user);
        if (before) b.del(kKafkaFamily, fmt::format("p/{}/{}", *before, id));
        b.put(kKafkaFamily, fmt::format("u/{}", id), std::to_string(now));
        b.put(kKafkaFamily, fmt::format("p/{}/{}", now, id), "");
      }
    });
    for (const auto& [user, now_before] : index) indexed[user] = now_before.first;
    std::vector<RdKafka::TopicPartition*> commit;
    for (const auto& [partition, next] : batch_next)
      commit.push_back(RdKafka::TopicPartition::create(opt.topic, partition, next));
    consumer->commitAsync(commit);
    RdKafka::TopicPartition::destroy(commit);
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (AddStatus a : outcomes) {
        if (a == AddStatus::Accepted) ++st.accepted;
        else if (a == AddStatus::Duplicate) ++st.duplicates;
        else if (a == AddStatus::Bad) ++st.bad;
        else ++st.late;
      }
      st.partitions_closed += s.partitions();
      ++st.batches;
      for (const auto& [partition, next] : batch_next) st.next_offset[partition] = next;
    }
    events.clear();
    event_partition.clear();
    batch_next.clear();
  }

  void update_lag() {
    std::map<int32_t, int64_t> lag;
    std::map<int32_t, int64_t> next;
    {
      std::lock_guard<std::mutex> lock(mutex);
      next = st.next_offset;
    }
    for (const auto& [partition, offset] : next) {
      int64_t low = 0, high = 0;
      if (consumer->get_watermark_offsets(opt.topic, partition, &low, &high) == RdKafka::ERR_NO_ERROR && high >= 0)
        lag[partition] = std::max<int64_t>(0, high - offset);
    }
    std::lock_guard<std::mutex> lock(mutex);
    st.lag = std::move(lag);
  }

  void run(const std::atomic<bool>& stop) {
    auto batch_start = std::chrono::steady_clock::now();
    while (!stop) {
      std::unique_ptr<RdKafka::Message> m(consumer->consume(static_cast<int>(opt.max_wait.count())));
      if (m->err() == RdKafka::ERR_NO_ERROR) {
        if (batch_next.empty()) batch_start = std::chrono::steady_clock::now();
        take(*m);
      } else if (m->err() == RdKafka::ERR__FATAL) {
        // E.g. a static member fenced after a broker restart: this consumer can do nothing
        // more, so a new one joins under the same name (its revocation stores the batch).
        std::string why;
        consumer->fatal_error(why);
        log_warning(fmt::format("Kafka: {}; joining the group again with a new consumer", why));
        flush();
        if (revoked && !held.empty()) revoked(held);  // a fatal consumer may not say so itself
        held.clear();
        close();
        connect();
      } else if (m->err() != RdKafka::ERR__TIMED_OUT && m->err() != RdKafka::ERR__PARTITION_EOF) {
        log_warning(fmt::format("Kafka: {}", m->errstr()));
      }
      if (events.size() >= opt.max_batch ||
          (!batch_next.empty() && std::chrono::steady_clock::now() - batch_start >= opt.max_wait)) {
        flush();
        update_lag();
      }
    }
    flush();
    close();
  }
};

KafkaIngest::KafkaIngest(Store& store, const BehaviorLog& catalog, KafkaOptions options, DeliverFn deliver)
    : impl_(std::make_unique<Impl>(store, catalog, std::move(options), std::move(deliver))) {}
KafkaIngest::~KafkaIngest() = default;

void KafkaIngest::run(const std::atomic<bool>& stop) { impl_->run(stop); }

void KafkaIngest::on_rebalance(PartitionsFn assigned, PartitionsFn revoked) {
  impl_->assigned = std::move(assigned);
  impl_->revoked = std::move(revoked);
}

KafkaStats KafkaIngest::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->st;
}

}  // namespace liber
