// Store on RocksDB: one column family per liber::Family, WAL on, sync per write optional.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "liber/error.h"
#include "liber/store.h"

namespace liber {

namespace fs = std::filesystem;

const char* to_string(Family family) {
  switch (family) {
    case Family::Meta: return "meta";
    case Family::Events: return "events";
    case Family::Caches: return "caches";
    case Family::Partitions: return "partitions";
    case Family::Late: return "late";
    case Family::Progress: return "progress";
    case Family::Interests: return "interests";
    case Family::ItemKnowledge: return "item_knowledge";
    case Family::LlmCache: return "llm_cache";
    case Family::Vectors: return "knowledge_vectors";
  }
  return "?";
}

namespace {

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

class RocksBatch final : public WriteBatch {
 public:
  explicit RocksBatch(const std::vector<rocksdb::ColumnFamilyHandle*>& cfs) : cfs_(cfs) {}
  void put(Family f, std::string_view key, std::string_view value) override {
    check(batch_.Put(cfs_[static_cast<int>(f)], slice(key), slice(value)));
  }
  void del(Family f, std::string_view key) override {
    check(batch_.Delete(cfs_[static_cast<int>(f)], slice(key)));
  }
  std::size_t count() const override { return batch_.Count(); }
  std::size_t bytes() const override { return batch_.GetDataSize(); }
  void clear() override { batch_.Clear(); }
  rocksdb::WriteBatch& raw() { return batch_; }

 private:
  static void check(const rocksdb::Status& s) {
    if (!s.ok()) throw Error(ErrorKind::Internal, "write batch: " + s.ToString());
  }
  const std::vector<rocksdb::ColumnFamilyHandle*>& cfs_;
  rocksdb::WriteBatch batch_;
};

class RocksStore final : public Store {
 public:
  RocksStore(const fs::path& path, const StoreOptions& opt) : path_(path), read_only_(opt.read_only) {
    if (!opt.read_only) prepare_directory(opt.create_if_missing);
    rocksdb::Options options;
    options.create_if_missing = opt.create_if_missing && !opt.read_only;
    options.create_missing_column_families = !opt.read_only;
    options.IncreaseParallelism(2);
    options.max_open_files = 256;
    options.keep_log_file_num = 3;
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    rocksdb::ColumnFamilyOptions cf(options);
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf.compression = rocksdb::kLZ4Compression;
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    families.emplace_back(rocksdb::kDefaultColumnFamilyName, cf);
    for (int f = 0; f < kFamilyCount; ++f)
      families.emplace_back(to_string(static_cast<Family>(f)), cf);
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s;
    // Families a read-only open finds on disk (a store older than a family lacks it).
    std::vector<int> present;
    for (int f = 0; f < kFamilyCount; ++f) present.push_back(f);
    if (opt.read_only) {
      std::error_code ec;
      if (!fs::exists(path / "CURRENT", ec))
        throw Error(ErrorKind::Io, fmt::format("no liber state store at {}", path.string()));
      std::vector<std::string> existing;
      if (rocksdb::DB::ListColumnFamilies(options, path.string(), &existing).ok()) {
        std::vector<rocksdb::ColumnFamilyDescriptor> kept{families[0]};
        present.clear();
        for (int f = 0; f < kFamilyCount; ++f)
          if (std::find(existing.begin(), existing.end(), families[f + 1].name) != existing.end()) {
            kept.push_back(families[f + 1]);
            present.push_back(f);
          }
        families = std::move(kept);
      }
      s = rocksdb::DB::OpenForReadOnly(options, path.string(), families, &handles, &db);
    } else {
      s = rocksdb::DB::Open(options, path.string(), families, &handles, &db);
    }
    if (!s.ok()) {
      std::string hint;
      if (s.IsIOError() && s.ToString().find("lock") != std::string::npos)
        hint = " (is another liber process using this store?)";
      else if (s.IsIOError())
        hint = " (is the directory writable?)";
      throw Error(ErrorKind::Io, fmt::format("cannot open the state store at {}: {}{}",
                                             path.string(), s.ToString(), hint));
    }
    db_.reset(db);
    default_ = handles[0];
    cfs_.assign(kFamilyCount, nullptr);
    for (std::size_t i = 0; i < present.size(); ++i) cfs_[present[i]] = handles[i + 1];
  }

  ~RocksStore() override {
    if (!db_) return;
    for (auto* h : cfs_)
      if (h) db_->DestroyColumnFamilyHandle(h);
    db_->DestroyColumnFamilyHandle(default_);
    db_->Close();
  }

  std::optional<std::string> get(Family f, std::string_view key) override {
    if (!cf(f)) return std::nullopt;  // family absent from a read-only older store
    std::string value;
    rocksdb::Status s = db_->Get(read_opts_, cf(f), slice(key), &value);
    if (s.IsNotFound()) return std::nullopt;
    check(s, "read");
    return value;
  }

  std::vector<std::optional<std::string>> multi_get(Family f,
                                                    std::span<const std::string> keys) override {
    if (!cf(f)) return std::vector<std::optional<std::string>>(keys.size());
    std::vector<rocksdb::Slice> slices;
    slices.reserve(keys.size());
    for (const auto& k : keys) slices.emplace_back(k);
    std::vector<rocksdb::ColumnFamilyHandle*> handles(keys.size(), cf(f));
    std::vector<std::string> values;
    std::vector<rocksdb::Status> st = db_->MultiGet(read_opts_, handles, slices, &values);
    std::vector<std::optional<std::string>> out(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (st[i].IsNotFound()) continue;
      check(st[i], "read");
      out[i] = std::move(values[i]);
    }
    return out;
  }

  void scan(Family f, std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn) override {
    if (!cf(f)) return;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_opts_, cf(f)));
    for (it->Seek(slice(prefix)); it->Valid(); it->Next()) {
      const rocksdb::Slice k = it->key();
      if (!k.starts_with(slice(prefix))) break;
      const rocksdb::Slice v = it->value();
      if (!fn({k.data(), k.size()}, {v.data(), v.size()})) break;
    }
    check(it->status(), "scan");
  }

  std::unique_ptr<WriteBatch> new_batch() override { return std::make_unique<RocksBatch>(cfs_); }

  void write(WriteBatch& batch, bool sync) override {
    if (read_only_)
      throw Error(ErrorKind::Io,
                  fmt::format("the state store at {} is open read-only", path_.string()));
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    check(db_->Write(wo, &static_cast<RocksBatch&>(batch).raw()), "write");
  }

  void flush() override {
    if (read_only_) return;
    rocksdb::FlushOptions fo;
    for (auto* h : cfs_)
      if (h) check(db_->Flush(fo, h), "flush");
  }

  StoreSize size() override {
    StoreSize out;
    for (auto* h : cfs_) {
      if (!h) continue;
      uint64_t v = 0;
      if (db_->GetIntProperty(h, rocksdb::DB::Properties::kLiveSstFilesSize, &v))
        out.sst_bytes += v;
      if (db_->GetIntProperty(h, rocksdb::DB::Properties::kCurSizeAllMemTables, &v))
        out.memtable_bytes += v;
    }
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(path_, ec))
      if (entry.path().extension() == ".log") out.wal_bytes += entry.file_size(ec);
    return out;
  }

  const fs::path& path() const override { return path_; }

 private:
  rocksdb::ColumnFamilyHandle* cf(Family f) const { return cfs_[static_cast<int>(f)]; }

  void check(const rocksdb::Status& s, const char* what) const {
    if (!s.ok())
      throw Error(ErrorKind::Io, fmt::format("state store {}: {} failed: {}", path_.string(),
                                             what, s.ToString()));
  }

  // Clear errors before RocksDB's own: a file in the way, an unwritable directory.
  void prepare_directory(bool create) {
    std::error_code ec;
    if (fs::exists(path_, ec) && !fs::is_directory(path_, ec))
      throw Error(ErrorKind::Io, fmt::format("the state store path {} exists and is not a "
                                             "directory", path_.string()));
    if (!fs::exists(path_, ec)) {
      if (!create)
        throw Error(ErrorKind::Io, fmt::format("no liber state store at {}", path_.string()));
      fs::create_directories(path_, ec);
      if (ec)
        throw Error(ErrorKind::Io, fmt::format("cannot create the state store directory {}: {}",
                                               path_.string(), ec.message()));
    }
    if (::access(path_.c_str(), W_OK | X_OK) != 0)
      throw Error(ErrorKind::Io, fmt::format("the state store directory {} is not writable "
                                             "(use a writable --store path)", path_.string()));
  }

  fs::path path_;
  bool read_only_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::ReadOptions read_opts_;
};

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const fs::path& path, const StoreOptions& options) {
  return std::make_unique<RocksStore>(path, options);
}

}  // namespace liber
