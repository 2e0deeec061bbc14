// Durable key-value state for liber's incremental stages: a small Store interface (point
// reads, multi-get, ordered prefix scans, atomic write batches across column families) and
// its one implementation on RocksDB.
//
// Column families are named key spaces. The store knows no stage: each stage declares the
// families it owns (a Family constant in its own header) and the store opens every family
// it finds on disk and creates one the first time a batch writes to it. A read of a family
// the store does not have sees it empty. The store's own families:
//   meta      store identity and stage settings
//   progress  per-stage bookkeeping (ingest offsets, run reports), keys prefixed by stage
// Durability: writes go through the WAL; `sync` (per write) fsyncs it. Without sync a
// process crash (SIGKILL) loses nothing that write() returned from; an OS crash or power
// loss may lose the last unsynced writes, never a part of one batch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace liber {

// A column family by name (letters, digits, '_'; not "default").
struct Family {
  std::string_view name;
};
inline constexpr Family kMetaFamily{"meta"};
inline constexpr Family kProgressFamily{"progress"};

// Puts and deletes, applied all-or-nothing by Store::write.
class WriteBatch {
 public:
  virtual ~WriteBatch() = default;
  virtual void put(Family family, std::string_view key, std::string_view value) = 0;
  virtual void del(Family family, std::string_view key) = 0;
  virtual std::size_t count() const = 0;  // operations in the batch
  virtual std::size_t bytes() const = 0;  // approximate encoded size
  virtual void clear() = 0;
};

struct StoreOptions {
  bool read_only = false;          // open for inspection; no LOCK taken, writes throw
  bool create_if_missing = true;   // ignored when read_only
};

struct StoreSize {
  uint64_t sst_bytes = 0;   // live SST files
  uint64_t wal_bytes = 0;   // write-ahead log files
  uint64_t memtable_bytes = 0;
  uint64_t total_on_disk() const { return sst_bytes + wal_bytes; }
};

class Store {
 public:
  virtual ~Store() = default;
  virtual std::optional<std::string> get(Family family, std::string_view key) = 0;
  // One result per key, in order.
  virtual std::vector<std::optional<std::string>> multi_get(
      Family family, std::span<const std::string> keys) = 0;
  // Calls fn(key, value) for every key starting with `prefix`, in key order, until fn
  // returns false. An empty prefix scans the whole family.
  virtual void scan(Family family, std::string_view prefix,
                    const std::function<bool(std::string_view, std::string_view)>& fn) = 0;
  virtual std::unique_ptr<WriteBatch> new_batch() = 0;
  // Atomic. Throws liber::Error (Io) naming the store path on failure.
  virtual void write(WriteBatch& batch, bool sync = false) = 0;
  // Persists memtables to SST files (not needed for durability; the WAL suffices).
  virtual void flush() = 0;
  virtual StoreSize size() = 0;
  virtual const std::filesystem::path& path() const = 0;
  // The families present (on disk or created since open), sorted.
  virtual std::vector<std::string> families() = 0;
};

// Opens (creating if allowed) a RocksDB store at `path`. Throws liber::Error naming the
// path: Io when the directory cannot be created or written (read-only file system, no
// permission, a regular file in the way) or is locked by another process.
std::unique_ptr<Store> open_rocksdb_store(const std::filesystem::path& path,
                                          const StoreOptions& options = {});

}  // namespace liber
