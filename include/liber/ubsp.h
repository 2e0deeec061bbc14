// UBSP — User Behavior Streaming Partition (LIBER §UBSP).
//
// Every user has a short-term *cache* of behaviors and a list of closed, immutable
// *partitions*. A new event goes into the cache; when the partition condition fires, the
// cache (or, for the shift rule, its older part) becomes Partition{user, seq, events,
// t_begin, t_end, reason} and leaves the cache. Nothing already partitioned is touched
// again, so the LLM stage runs once per partition.
//
// Conditions (PartitionRule; any that fires closes; 0 turns a rule off):
//   Count    the cache reaches `count` events (K, default 50). Checked after adding.
//   Span     the new event is more than `max_span` seconds after the cache's first event:
//            the cache closes BEFORE the event, which starts the next partition.
//   Gap      the new event is more than `max_gap` seconds after the cache's newest event:
//            closes BEFORE the event, likewise.
//   Shift    automatic interest-shift rule (`shift`), below.
//   MaxSize  the cache reaches `max_size` (default 200): always on, keeps the LLM input
//            bounded whatever the other rules do (Count wins the label when both fire).
//   Flush    explicit flush (end of data), only when asked.
//
// Interest-shift rule. Each item carries an attribute (default "genres", a multi-valued
// item attribute; every value of an item counts once). Once the cache holds at least
// 2·W events (W = `shift_window`, default 20), after each added event the Jensen–Shannon
// divergence (base 2, in [0,1]) is computed between the attribute distribution of the
// cache's *window* (its newest W events) and of its *head* (all older cache events). When
// it exceeds `shift_threshold` (default 0.35) the head is closed as a partition with reason
// Shift and the W window events stay in the cache as the start of the next partition: the
// cut falls where the interests changed, not after. The rule needs no state beyond the
// cache, works for a user's first partition, and yields partitions of W..max_size events.
//
// Event order and lateness. Events of a user must arrive in timestamp order (equal
// timestamps allowed). With `lateness` L > 0 seconds, an event up to L seconds older than
// the user's newest event is still accepted and inserted into the cache in timestamp
// order (after equal timestamps), provided it is not older than the t_end of the user's
// last closed partition. Otherwise it is *late*: LateClosed when ts < t_end of the last
// partition (it can never be reordered into a closed partition), LateWindow when it is
// newer than that but more than L seconds older than the user's newest event. Late
// events are recorded (durable store: `late` family, with the reason) and counted, never
// partitioned. A late event never closes a partition by Span or Gap. Default L = 0.
//
// Bad events (ts < 0, i.e. before 1970, or ts > now + 1 day; user or item id 0) are
// rejected and counted, never stored. Events of items missing from the catalog never reach
// UBSP: the dataset readers drop them (ReadReport::unknown_item_events).
//
// Idempotence. An event is identified by (external user id, external item id, ts); the
// durable Ingestor records that key for every accepted or late event and ignores a second
// delivery. The in-memory Partitioner alone only detects duplicates still in the cache.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "liber/data.h"
#include "liber/store.h"

namespace liber {

enum class CloseReason : uint8_t { Count = 0, Span, Gap, Shift, MaxSize, Flush };
inline constexpr int kCloseReasonCount = 6;
const char* to_string(CloseReason reason);

struct PartitionRule {
  std::size_t count = 50;          // K; 0 = off
  int64_t max_span = 0;            // seconds; 0 = off
  int64_t max_gap = 0;             // seconds; 0 = off
  bool shift = false;
  std::size_t shift_window = 20;   // W
  double shift_threshold = 0.35;   // JS divergence, base 2
  std::string shift_attribute = "genres";
  std::size_t max_size = 200;      // always on (>= 1)
  int64_t lateness = 0;            // seconds

  // "count=50 span=0 gap=0 shift=off max=200 late=0": stable text, part of the store's
  // identity. Throws Error(Config) for an inconsistent rule.
  std::string describe() const;
  void validate() const;
  // The rule describe() wrote (a store's meta "rule"); throws Error(Config) naming the text.
  static PartitionRule parse(std::string_view text);
};

struct Partition {
  uint32_t user = 0;
  uint32_t seq = 0;               // 0-based per user
  std::vector<Event> events;      // timestamp order
  int64_t t_begin = 0, t_end = 0;
  CloseReason reason = CloseReason::Count;
};

// What happened to one event.
enum class AddStatus : uint8_t { Accepted = 0, Duplicate, LateClosed, LateWindow, Bad };
const char* to_string(AddStatus status);

inline constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();

// One user's partitioner state. `attr_counts` is derived (rebuilt by Partitioner::rebuild).
struct UserState {
  std::vector<Event> cache;       // timestamp order
  uint32_t next_seq = 0;
  int64_t newest_ts = kNoTime;    // newest accepted event (cache or closed)
  int64_t last_end = kNoTime;     // t_end of the last closed partition
  std::vector<uint32_t> attr_counts;  // shift rule: attribute value counts over the cache
};

// The pure, in-memory core: no I/O, one call per event.
class Partitioner {
 public:
  // `items` supplies the shift attribute (required when rule.shift); may be null otherwise.
  explicit Partitioner(PartitionRule rule, const ItemCatalog* items = nullptr);

  // Adds `e` (e.user must be the state's user). Partitions it closes are appended to
  // `closed` (0, 1 or 2 of them: e.g. Gap before the event and Count after it).
  AddStatus add(UserState& state, const Event& e, std::vector<Partition>& closed) const;
  // Closes a non-empty cache with reason Flush; returns whether it did.
  bool flush(UserState& state, uint32_t user, std::vector<Partition>& closed) const;
  // Recomputes derived fields after a state was loaded.
  void rebuild(UserState& state) const;

  bool is_bad(const Event& e) const;
  void set_max_timestamp(int64_t ts) { max_ts_ = ts; }
  const PartitionRule& rule() const { return rule_; }

 private:
  void close(UserState& st, std::size_t n, CloseReason reason, std::vector<Partition>& out) const;
  bool shift_fires(const UserState& st) const;
  void count_item(std::vector<uint32_t>& counts, uint32_t item, int delta) const;

  PartitionRule rule_;
  const Attribute* attr_ = nullptr;
  std::size_t attr_values_ = 0;
  int64_t max_ts_;
};

// All events in global time order: stable sort by timestamp, ties keep file order.
std::vector<Event> time_ordered(std::span<const Event> events);

// Runs the in-memory partitioner over a time-ordered stream (no flush at the end).
struct MemoryRun {
  std::vector<Partition> partitions;  // in closing order
  std::vector<UserState> users;       // indexed by user id; the caches left open
  std::array<uint64_t, 5> status_counts{};  // per AddStatus
};
MemoryRun partition_in_memory(const BehaviorLog& log, std::span<const Event> stream,
                              const PartitionRule& rule);

// ---- Durable state --------------------------------------------------------------------
// Store layout (all integers varint unless noted; ts as zigzag varint; keys use EXTERNAL
// ids, never the reader's dense ids):
//   user key  U = varint(len) user_id
//   events    U + varint(len) item_id + ts (8 bytes big-endian, sign bit flipped)
//             -> "A" accepted | "L" late
//   late      same key -> [reason byte][event]
//   caches    U -> [version 1][next_seq][newest_ts][last_end][n][events]
//   partitions U + seq (4 bytes big-endian) -> [version 1][reason][n][t_begin][events]
//   events inside values: varint(len) item_id, ts delta to the previous event (first: to
//   t_begin or absolute), tag byte (label+1 | rating kind << 2), rating (1 byte half-steps
//   or 4-byte float when not a multiple of 0.5; none when NaN)
//   progress  stream name -> [version 1][offset][prefix hash (8 bytes)]
//   meta      "dataset", "fingerprint", "rule", "format", "catalog" (below)
// The catalog: every stage after ingest reads the dataset from the store alone.
//   meta "catalog" -> JSON {"v": 1, "name", "description", "like_threshold", "items" and
//             "users": {"rows", "attributes": [{"name", "multi", "values": [...] (code 1..),
//             "labels": {value: text}}]}}
//   items     row (4 bytes big-endian, the reader's dense id) -> [version 1][item id]
//             [title][year][per attribute: n, codes]
//   users     row -> [version 1][user id][per attribute: n, codes]
//   derived_partitions  varint(len) set name + partition key -> as partitions (PartitionSet)

struct StoredEvent {
  std::string item;
  int64_t ts = 0;
  float rating = NAN;
  int8_t label = -1;
};
struct StoredPartition {
  std::string user;
  uint32_t seq = 0;
  int64_t t_begin = 0, t_end = 0;
  CloseReason reason = CloseReason::Count;
  std::vector<StoredEvent> events;
  bool operator==(const StoredPartition& o) const;
};
struct StoredCache {
  std::string user;
  uint32_t next_seq = 0;
  int64_t newest_ts = kNoTime, last_end = kNoTime;
  std::vector<StoredEvent> events;
};
struct StoredLate {
  std::string user;
  StoredEvent event;
  AddStatus reason = AddStatus::LateClosed;
};

struct IngestStats {
  uint64_t events_seen = 0;      // stream positions looked at in this run
  uint64_t skipped = 0;          // before the stored progress offset (already ingested)
  uint64_t new_events = 0;       // accepted into a cache
  uint64_t duplicates = 0;
  uint64_t late_closed = 0, late_window = 0;
  uint64_t bad = 0;
  std::array<uint64_t, kCloseReasonCount> closed{};  // partitions closed, by reason
  uint64_t users = 0;            // distinct users touched in this run
  uint64_t batches = 0;
  bool prefix_changed = false;   // the stream no longer starts with what was ingested
  double seconds = 0;

  uint64_t partitions() const;
  double events_per_second() const;
  std::string summary() const;   // multi-line, for the CLI
};

struct IngestOptions {
  std::size_t batch_events = 4096;  // events per atomic WriteBatch
  bool sync = false;                // fsync the WAL per batch
  bool progress_bar = false;
  int64_t max_timestamp = 0;        // newest acceptable ts; 0 = now + 1 day
  std::string stream = "events";    // progress key
  // Called after each committed batch (tests, progress reporting).
  std::function<void(const IngestStats&)> on_commit;
};

// Identity of a dataset + rule: FNV-1a over the dataset name, every item's external id and
// shift-attribute values, and the rule's describe().
std::string dataset_fingerprint(const BehaviorLog& log, const PartitionRule& rule);

// Records name + fingerprint in `meta` on first use; throws Error(Config) naming the
// store's path, the stored and the new identity when they differ.
void check_store_identity(Store& store, const BehaviorLog& log, const PartitionRule& rule);

// Durable streaming partitioner. Each batch of `batch_events` stream positions is written
// in ONE atomic WriteBatch: dedup keys, late records, closed partitions, the caches of the
// users it touched and the progress offset (+ a hash of the stream prefix). A restart over
// the same stream resumes exactly at the offset; over a stream that extends the old one it
// processes only the tail; over a changed stream it replays everything through dedup.
class Ingestor {
 public:
  Ingestor(Store& store, const BehaviorLog& log, PartitionRule rule, IngestOptions opt = {});
  ~Ingestor();
  Ingestor(const Ingestor&) = delete;
  Ingestor& operator=(const Ingestor&) = delete;

  // `stream` is the whole delivery order (e.g. time_ordered(log.events)).
  IngestStats ingest(std::span<const Event> stream);
  // Closes every non-empty cache with reason Flush (end of data), atomically.
  IngestStats flush_all();
  // One delivery of live events (a request to `liber serve`), in arrival order, through
  // the same rules and dedup as ingest() and written as ONE atomic batch (fsynced when
  // IngestOptions::sync): when it returns, every outcome is durable; when it throws,
  // nothing of the delivery is stored. No progress offset: the dedup keys make a
  // redelivery harmless. `outcomes` gets one status per event.
  // `with`, when given, adds its own writes to the delivery's batch (a Kafka consumer's
  // offsets: state and offsets are then stored together or not at all).
  IngestStats deliver(std::span<const Event> events, std::vector<AddStatus>* outcomes = nullptr,
                      const std::function<void(WriteBatch&)>& with = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Inspection (works on a read-only store).
std::vector<StoredPartition> read_partitions(Store& store, std::string_view user);
std::optional<StoredCache> read_cache(Store& store, std::string_view user);
void for_each_partition(Store& store, const std::function<void(const StoredPartition&)>& fn);
void for_each_cache(Store& store, const std::function<void(const StoredCache&)>& fn);
std::vector<StoredLate> read_late(Store& store);
// One JSON object, no newline: {"user","seq","t_begin","t_end","reason","size","events":
// [{"item","ts","rating"?,"label"?}]}
std::string partition_json(const StoredPartition& p);

// Writes the log's item catalog and user table into the store (one atomic batch; the
// Ingestor does it on construction, so a store always knows its dataset).
void store_catalog(Store& store, const BehaviorLog& log);
// The dataset as ingested: catalog, user table and, with `with_events`, every accepted
// event (from the closed partitions, then the open caches; late and bad events are not
// part of it). Throws Error(InvalidInput) naming the store when it has no catalog.
BehaviorLog load_behavior_log(Store& store, bool with_events = true);
// True when the store holds a catalog (every store ingested by this liber does).
bool has_catalog(Store& store);

// ---- Partition sets --------------------------------------------------------------------
// What UIL summarises: "ubsp", the partitions the rule closed, or a set derived from the
// same store, "first:N": each user's first N accepted behaviors as one partition (seq 0;
// users with fewer have none), the KAR-style baseline's input. A derived set is stored once
// derived, so it stays what was summarised when later events arrive.
struct PartitionSet {
  std::size_t first = 0;  // N of "first:N"; 0 = "ubsp"
  bool derived() const { return first > 0; }
  std::string name() const;  // "ubsp" | "first:N"
  // Throws Error(Config) for anything but "ubsp" or "first:N" (N >= 1).
  static PartitionSet parse(std::string_view text);
};
// Stores the set's partitions for every user that has enough behaviors and none yet; returns
// how many it added (0 for "ubsp", which ingest maintains).
std::size_t derive_partition_set(Store& store, const PartitionSet& set);
void for_each_partition_in(Store& store, const PartitionSet& set,
                           const std::function<void(const StoredPartition&)>& fn);
std::vector<StoredPartition> read_partitions_in(Store& store, const PartitionSet& set,
                                                std::string_view user);

// Convenience for the CLI and the crash-test helper: opens/creates the store at `path`,
// checks identity, ingests time_ordered(log.events), returns the stats.
IngestStats ingest_log(const std::filesystem::path& path, const BehaviorLog& log,
                       const PartitionRule& rule, const IngestOptions& opt);

}  // namespace liber
