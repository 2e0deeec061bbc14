// Events from a Kafka topic into the store, through the same UBSP path as `liber ingest` and
// POST /v1/events (Ingestor::deliver), with an exactly-once effect on state: each batch's
// events and the consumed offsets of its Kafka partitions are written in ONE atomic store
// batch, and on assignment the consumer seeks to the offsets the store holds (Kafka's
// committed offsets are only advisory, for lag tools). A message replayed after a crash is
// therefore never read twice; were it read, the dedup keys would make it a no-op.
//
// A message: key = the user id, value = one event as JSON ({"user", "item", "ts", "rating"?,
// "label"?}, as POST /v1/events takes it). A message that is not one is counted as bad,
// logged with its partition and offset, and skipped: its offset is consumed.
//
// Offsets live in the store's meta family: "kafka/<topic>/<partition>" -> the next offset.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "liber/data.h"
#include "liber/store.h"
#include "liber/ubsp.h"

namespace liber {

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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The next offset of each partition of `topic` the store holds.
std::map<int32_t, int64_t> stored_kafka_offsets(Store& store, const std::string& topic);

}  // namespace liber
