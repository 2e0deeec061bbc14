// The durable UBSP ingestor: Partitioner + Store, one atomic WriteBatch per batch of events.
#include <algorithm>
#include <chrono>
#include <unordered_set>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/progress.h"
#include "liber/ubsp.h"
#include "liber/ubsp/codec.h"

namespace liber {

using namespace ubsp;

uint64_t IngestStats::partitions() const {
  uint64_t n = 0;
  for (uint64_t c : closed) n += c;
  return n;
}

double IngestStats::events_per_second() const {
  return seconds > 0 ? static_cast<double>(events_seen) / seconds : 0.0;
}

std::string IngestStats::summary() const {
  std::string s;
  s += fmt::format("events       {} new, {} duplicate, {} late ({} before a closed partition, "
                   "{} beyond the lateness window), {} bad\n",
                   new_events, duplicates, late_closed + late_window, late_closed, late_window,
                   bad);
  if (skipped) s += fmt::format("skipped      {} events already ingested (progress offset)\n", skipped);
  if (prefix_changed)
    s += "note         the stream no longer starts with what was ingested before; every event "
         "was replayed through dedup\n";
  s += fmt::format("partitions   {} closed:", partitions());
  for (int r = 0; r < kCloseReasonCount; ++r)
    if (closed[r]) s += fmt::format(" {} {}", closed[r], to_string(static_cast<CloseReason>(r)));
  s += "\n";
  s += fmt::format("users        {} touched\n", users);
  s += fmt::format("elapsed      {:.2f} s, {} events/s, {} batches\n", seconds,
                   human_count(events_per_second()), batches);
  return s;
}

std::string dataset_fingerprint(const BehaviorLog& log, const PartitionRule& rule) {
  uint64_t h = fnv1a(log.name);
  const Attribute* attr = rule.shift ? log.items.attribute(rule.shift_attribute) : nullptr;
  for (uint32_t i = 1; i < log.items.size(); ++i) {
    h = fnv1a(log.items.ids.key(i), h);
    h = fnv1a(std::string_view("\0", 1), h);
    if (attr && i < attr->rows())
      for (uint32_t code : attr->row(i)) h = fnv1a(attr->vocab.key(code) + "|", h);
  }
  h = fnv1a(rule.describe(), h);
  return fmt::format("{:016x}", h);
}

void check_store_identity(Store& store, const BehaviorLog& log, const PartitionRule& rule) {
  const std::string fp = dataset_fingerprint(log, rule);
  const auto name = store.get(kMetaFamily, "dataset");
  const auto stored = store.get(kMetaFamily, "fingerprint");
  if (!name && !stored) {
    auto b = store.new_batch();
    b->put(kMetaFamily, "dataset", log.name);
    b->put(kMetaFamily, "fingerprint", fp);
    b->put(kMetaFamily, "rule", rule.describe());
    b->put(kMetaFamily, "format", "liber-ubsp/1");
    store.write(*b, true);
    return;
  }
  if (name.value_or("") != log.name || stored.value_or("") != fp) {
    const auto stored_rule = store.get(kMetaFamily, "rule");
    throw Error(ErrorKind::Config,
                fmt::format("the state store at {} belongs to another dataset or partition rule: "
                            "it holds '{}' (fingerprint {}, rule '{}'), this run is '{}' "
                            "(fingerprint {}, rule '{}'); use another --store path",
                            store.path().string(), name.value_or("?"), stored.value_or("?"),
                            stored_rule.value_or("?"), log.name, fp, rule.describe()));
  }
}

namespace {

struct Progress {
  uint64_t offset = 0;
  uint64_t hash = 0;
};

std::string encode_progress(const Progress& p) {
  std::string v;
  v.push_back(static_cast<char>(kValueVersion));
  put_varint(v, p.offset);
  put_be64(v, p.hash);
  return v;
}

Progress decode_progress(std::string_view value) {
  ByteReader r(value, "progress");
  if (r.byte() != kValueVersion) r.corrupt();
  Progress p;
  p.offset = r.varint();
  p.hash = r.be64();
  return p;
}

}  // namespace

struct Ingestor::Impl {
  Store& store;
  const BehaviorLog& log;
  Partitioner part;
  IngestOptions opt;
  std::vector<UserState> states;
  std::vector<uint8_t> loaded;
  std::unordered_map<std::string, uint32_t> item_ids;  // external -> dense, for loads

  Impl(Store& s, const BehaviorLog& l, PartitionRule rule, IngestOptions o)
      : store(s), log(l), part(rule, &l.items), opt(std::move(o)) {
    if (opt.max_timestamp > 0) part.set_max_timestamp(opt.max_timestamp);
    if (opt.batch_events == 0) opt.batch_events = 1;
    states.resize(log.users.size());
    loaded.assign(log.users.size(), 0);
    check_store_identity(store, log, rule);
    store_catalog(store, log);
  }

  const std::string& user_ext(uint32_t u) const { return log.users.ids.key(u); }

  UserState& state(uint32_t u) {
    if (u >= states.size()) {
      states.resize(u + 1);
      loaded.resize(u + 1, 0);
    }
    if (!loaded[u]) {
      loaded[u] = 1;
      if (auto v = store.get(kCaches, user_key(user_ext(u)))) {
        StoredCache c = decode_cache(user_key(user_ext(u)), *v);
        UserState& st = states[u];
        st.next_seq = c.next_seq;
        st.newest_ts = c.newest_ts;
        st.last_end = c.last_end;
        st.cache.clear();
        for (const StoredEvent& se : c.events) {
          const uint32_t item = log.items.ids.find(se.item);
          if (item == 0)
            throw Error(ErrorKind::Config,
                        fmt::format("the state store at {} holds item '{}' (user '{}') that the "
                                    "catalog does not have", store.path().string(), se.item,
                                    c.user));
          st.cache.push_back(Event{u, item, se.ts, se.rating, se.label});
        }
        part.rebuild(st);
      }
    }
    return states[u];
  }

  static uint64_t mix(uint64_t h, const Event& e, const BehaviorLog& log) {
    h = fnv1a(log.users.ids.key(e.user), h ^ 0x9E3779B97F4A7C15ULL);
    h = fnv1a(log.items.ids.key(e.item), h);
    return h * 31 + static_cast<uint64_t>(e.ts);
  }

  // The batch being built: keys written but not yet committed, the users whose caches it
  // must write, the users counted in the stats.
  std::unordered_set<std::string> pending;
  std::vector<uint32_t> dirty;
  std::vector<uint8_t> touched, dirty_flag;
  std::vector<Partition> closed;
  std::string key;

  void begin_run() {
    touched.assign(states.size(), 0);
    dirty_flag.assign(states.size(), 0);
  }

  // One event through dedup and the partitioner into `batch`.
  AddStatus process(const Event& e, WriteBatch& batch, IngestStats& stats) {
    ++stats.events_seen;
    if (part.is_bad(e)) {
      ++stats.bad;
      return AddStatus::Bad;
    }
    UserState& st = state(e.user);
    if (e.user >= touched.size()) {
      touched.resize(states.size(), 0);
      dirty_flag.resize(states.size(), 0);
    }
    if (!touched[e.user]) {
      touched[e.user] = 1;
      ++stats.users;
    }
    key.clear();
    append_event_key(key, user_ext(e.user), log.items.ids.key(e.item), e.ts);
    // An event newer than everything the user has cannot have been seen before.
    if (st.newest_ts != kNoTime && e.ts <= st.newest_ts &&
        (pending.count(key) || store.get(kEvents, key))) {
      ++stats.duplicates;
      return AddStatus::Duplicate;
    }
    const AddStatus s = part.add(st, e, closed);
    switch (s) {
      case AddStatus::Accepted:
        ++stats.new_events;
        batch.put(kEvents, key, "A");
        break;
      case AddStatus::Duplicate:
        ++stats.duplicates;
        return s;
      case AddStatus::LateClosed:
      case AddStatus::LateWindow: {
        (s == AddStatus::LateClosed ? stats.late_closed : stats.late_window)++;
        batch.put(kEvents, key, "L");
        std::string v(1, static_cast<char>(s));
        put_event(v, log.items.ids.key(e.item), e.ts, 0, e.rating, e.label);
        batch.put(kLate, key, v);
        break;
      }
      case AddStatus::Bad:
        ++stats.bad;
        return s;
    }
    pending.insert(key);
    if (!dirty_flag[e.user]) {
      dirty_flag[e.user] = 1;
      dirty.push_back(e.user);
    }
    for (const Partition& p : closed) {
      batch.put(kPartitions, partition_key(user_ext(p.user), p.seq), encode_partition(p, log.items));
      ++stats.closed[static_cast<int>(p.reason)];
    }
    closed.clear();
    return s;
  }

  // Adds the touched users' caches to `batch` and commits it.
  void commit(WriteBatch& batch) {
    for (uint32_t u : dirty) {
      batch.put(kCaches, user_key(user_ext(u)), encode_cache(states[u], log.items));
      dirty_flag[u] = 0;
    }
    dirty.clear();
    store.write(batch, opt.sync);
    batch.clear();
    pending.clear();
  }

  IngestStats ingest(std::span<const Event> stream) {
    const auto t0 = std::chrono::steady_clock::now();
    IngestStats stats;
    Progress prog;
    if (auto v = store.get(kProgressFamily, opt.stream)) prog = decode_progress(*v);
    // Resume at the stored offset when the stream still starts with the ingested prefix.
    std::size_t start = 0;
    uint64_t hash = 0;
    if (prog.offset > 0) {
      if (prog.offset <= stream.size()) {
        for (std::size_t i = 0; i < prog.offset; ++i) hash = mix(hash, stream[i], log);
        if (hash == prog.hash) start = prog.offset;
      }
      if (start == 0) {
        stats.prefix_changed = true;
        hash = 0;
      }
    }
    stats.skipped = start;
    ProgressBar bar("ingest", stream.size() - start, "events", opt.progress_bar);
    begin_run();
    auto batch = store.new_batch();
    std::size_t pos = start;
    while (pos < stream.size()) {
      const std::size_t end = std::min(stream.size(), pos + opt.batch_events);
      for (std::size_t i = pos; i < end; ++i) {
        hash = mix(hash, stream[i], log);
        process(stream[i], *batch, stats);
      }
      batch->put(kProgressFamily, opt.stream, encode_progress({end, hash}));
      commit(*batch);
      ++stats.batches;
      bar.advance(end - pos);
      pos = end;
      stats.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (opt.on_commit) opt.on_commit(stats);
    }
    bar.finish();
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return stats;
  }

  IngestStats deliver(std::span<const Event> events, std::vector<AddStatus>* outcomes,
                      const std::function<void(WriteBatch&)>& with) {
    const auto t0 = std::chrono::steady_clock::now();
    IngestStats stats;
    begin_run();
    auto batch = store.new_batch();
    if (outcomes) outcomes->clear();
    for (const Event& e : events) {
      const AddStatus s = process(e, *batch, stats);
      if (outcomes) outcomes->push_back(s);
    }
    try {
      if (with) with(*batch);
      commit(*batch);
    } catch (...) {
      // Nothing of the delivery is stored: forget the in-memory states it changed, so
      // they are read back from the store on next use.
      for (uint32_t u : dirty) states[u] = UserState{}, loaded[u] = 0, dirty_flag[u] = 0;
      dirty.clear();
      pending.clear();
      throw;
    }
    stats.batches = 1;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return stats;
  }

  IngestStats flush_all() {
    const auto t0 = std::chrono::steady_clock::now();
    IngestStats stats;
    auto batch = store.new_batch();
    std::vector<Partition> closed;
    // Users with state in the store, not only those loaded in this process.
    std::vector<std::string> users;
    store.scan(kCaches, "", [&](std::string_view k, std::string_view) {
      users.emplace_back(user_of_key(k));
      return true;
    });
    for (const std::string& ext : users) {
      const uint32_t u = log.users.ids.find(ext);
      if (u == 0) continue;
      UserState& st = state(u);
      if (!part.flush(st, u, closed)) continue;
      ++stats.users;
      for (const Partition& p : closed) {
        batch->put(kPartitions, partition_key(ext, p.seq), encode_partition(p, log.items));
        ++stats.closed[static_cast<int>(p.reason)];
      }
      closed.clear();
      batch->put(kCaches, user_key(ext), encode_cache(st, log.items));
    }
    store.write(*batch, true);
    stats.batches = 1;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return stats;
  }
};

Ingestor::Ingestor(Store& store, const BehaviorLog& log, PartitionRule rule, IngestOptions opt)
    : impl_(std::make_unique<Impl>(store, log, std::move(rule), std::move(opt))) {}
Ingestor::~Ingestor() = default;
IngestStats Ingestor::ingest(std::span<const Event> stream) { return impl_->ingest(stream); }
IngestStats Ingestor::flush_all() { return impl_->flush_all(); }
IngestStats Ingestor::deliver(std::span<const Event> events, std::vector<AddStatus>* outcomes,
                              const std::function<void(WriteBatch&)>& with) {
  return impl_->deliver(events, outcomes, with);
}

IngestStats ingest_log(const std::filesystem::path& path, const BehaviorLog& log,
                       const PartitionRule& rule, const IngestOptions& opt) {
  auto store = open_rocksdb_store(path);
  Ingestor ing(*store, log, rule, opt);
  const std::vector<Event> stream = time_ordered(log.events);
  return ing.ingest(stream);
}

}  // namespace liber
