// Events from a Kafka topic into the store, through the same UBSP path as `liber ingest` and
// POST /v1/events (Ingestor::deliver), with an exactly-once effect on state: each batch's
// events and the consumed offsets of its Kafka partitions are written in ONE atomic store
// batch, and on assignment the consumer seeks to the offsets the store holds (Kafka's
// committed offsets are only advisory, for lag tools). A message replayed after a crash is
// therefore never read twice; were it read, the dedup keys would make it a no-op. A Kafka
// partition the store holds no offset for is read from its beginning: that rebuilds its
// users' state (the events topic must keep its events).
//
// A message: key = the user id, value = one event as JSON ({"user", "item", "ts", "rating"?,
// "label"?}, as POST /v1/events takes it). A message that is not one is counted as bad,
// logged with its partition and offset, and skipped: its offset is consumed.
//
// State per Kafka partition: one store per worker, its keys by user, and an index of which
// Kafka partition each user's events come from (kKafkaFamily), written in the same batch as
// the events. One store keeps a batch of events from several partitions, and their offsets,
// one atomic write with one fsync; the index says which users move with a partition.
//
// The output topic (KafkaChangelog): every interest record the worker makes, keyed
// "<user>|<seq>|<variant id>", value the record's JSON, produced idempotently to the
// same-numbered partition as its user's events. It is the downstream feed and the
// changelog: a worker that is assigned a partition first reads that partition of the output
// topic into its store (the records it lacks), so nothing already learned is learned again.
//
// Store keys: meta "kafka/<topic>/<partition>" -> the next offset (of the events topic, and
// of the output topic as restored); kKafkaFamily "u/<user>" -> the user's partition,
// "p/<partition>/<user>" -> "", "pub/<variant id>/<seq>/<user>" -> the hash of the record
// last delivered to the output topic.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "liber/data.h"
#include "liber/store.h"
#include "liber/ubsp.h"

namespace liber {

struct InterestRecord;

inline constexpr Family kKafkaFamily{"kafka"};

struct KafkaOptions {
  std::string brokers;        // bootstrap servers, host:port[,host:port]
  std::string topic;          // the events topic
  std::string group;          // the consumer group
  // A stable name for this worker (Kafka's static membership, group.instance.id): restarted
  // after a crash, it gets its partitions back at once instead of after the dead member's
  // session times out. Empty: a dynamic member.
  std::string worker_id;
  std::size_t max_batch = 1000;                 // events per atomic store batch
  std::chrono::milliseconds max_wait{100};      // the longest a batch waits to fill
  std::map<std::string, std::string> config;    // more librdkafka settings
  // The output topic (compacted, as many partitions as the events topic). Empty: none.
  std::string output_topic;
};

struct KafkaStats {
  uint64_t messages = 0;      // read from Kafka
  uint64_t accepted = 0, duplicates = 0, late = 0, bad = 0;
  uint64_t batches = 0;       // store batches written
  uint64_t partitions_closed = 0;
  uint64_t rebalances = 0;
  std::map<int32_t, int64_t> next_offset;  // per assigned Kafka partition, as stored
  std::map<int32_t, int64_t> lag;          // high watermark - next offset, when known
};

// Applies one batch of events with `with`'s writes in the same atomic store batch: the
// service passes its Ingestor (under its ingest lock), so HTTP and Kafka share one path.
using DeliverFn = std::function<IngestStats(std::span<const Event> events, std::vector<AddStatus>* outcomes,
                                            const std::function<void(WriteBatch&)>& with)>;

class KafkaIngest {
 public:
  // Throws Error(Config) for missing options or settings librdkafka refuses.
  KafkaIngest(Store& store, const BehaviorLog& catalog, KafkaOptions options, DeliverFn deliver);
  ~KafkaIngest();
  KafkaIngest(const KafkaIngest&) = delete;
  KafkaIngest& operator=(const KafkaIngest&) = delete;

  // Consumes until `stop` is set, then leaves the group (the batch in hand is written first).
  // Throws Error(Io) when a batch cannot be stored: nothing of it is, and its offsets stay.
  void run(const std::atomic<bool>& stop);
  KafkaStats stats() const;
  // Called on the consuming thread when partitions are assigned (before their first
  // message is read) and revoked (after the batch in hand is stored). Set before run().
  using PartitionsFn = std::function<void(const std::vector<int32_t>& partitions)>;
  void on_rebalance(PartitionsFn assigned, PartitionsFn revoked);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The next offset of each partition of `topic` the store holds.
std::map<int32_t, int64_t> stored_kafka_offsets(Store& store, const std::string& topic);
// The Kafka partition a user's events came from; the users of a partition.
std::optional<int32_t> kafka_partition_of(Store& store, std::string_view user);
std::vector<std::string> kafka_partition_users(Store& store, int32_t partition);

// The output topic: publishes records and restores them (see the top of this file).
struct ChangelogStats {
  uint64_t published = 0;   // records handed to the producer
  uint64_t delivered = 0;   // acknowledged by the brokers
  uint64_t failed = 0;      // not delivered: published again by the next sweep
  uint64_t unrouted = 0;    // of users whose events did not come from Kafka: not published
  uint64_t restored = 0;    // records read from the topic into the store
  uint64_t restore_skipped = 0;  // read, but the store had a final record for the key
  double restore_s = 0;     // time spent restoring, all partitions
};

class KafkaChangelog {
 public:
  // Throws Error(Config) when the output topic's partition count differs from the events
  // topic's, or either cannot be described.
  KafkaChangelog(Store& store, const KafkaOptions& options);
  ~KafkaChangelog();
  KafkaChangelog(const KafkaChangelog&) = delete;
  KafkaChangelog& operator=(const KafkaChangelog&) = delete;

  // A record just stored: produced unless it is still pending (a call that failed).
  void publish(const InterestRecord& record);
  // Waits (up to `timeout`) until every record published so far is acknowledged and its
  // mark stored. False on timeout.
  bool flush(std::chrono::milliseconds timeout);
  // Reads partition `partition` of the output topic, from the offset the store holds to
  // its end now, into the store: every record the store lacks a final record for. Then
  // publishes the partition's users' records that were stored but never acknowledged (a
  // crash between the two). Records restored count as published.
  void restore(int32_t partition);
  ChangelogStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace liber
