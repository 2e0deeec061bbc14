// Store on RocksDB: one column family per liber::Family name, opened when found on disk and
// created on first write; WAL on, sync per write optional.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <shared_mutex>
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

namespace {

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

// Resolves a family name to its handle; `create` makes a missing one (read-write only).
using FamilyResolver = std::function<rocksdb::ColumnFamilyHandle*(std::string_view, bool create)>;

class RocksBatch final : public WriteBatch {
 public:
  explicit RocksBatch(FamilyResolver resolve) : resolve_(std::move(resolve)) {}
  void put(Family f, std::string_view key, std::string_view value) override {
    check(batch_.Put(resolve_(f.name, true), slice(key), slice(value)));
  }
  void del(Family f, std::string_view key) override {
    check(batch_.Delete(resolve_(f.name, true), slice(key)));
  }
  std::size_t count() const override { return batch_.Count(); }
  std::size_t bytes() const override { return batch_.GetDataSize(); }
  void clear() override { batch_.Clear(); }
  rocksdb::WriteBatch& raw() { return batch_; }

 private:
  static void check(const rocksdb::Status& s) {
    if (!s.ok()) throw Error(ErrorKind::Internal, "write batch: " + s.ToString());
  }
  FamilyResolver resolve_;
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
    cf_options_ = rocksdb::ColumnFamilyOptions(options);
    cf_options_.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf_options_.compression = rocksdb::kLZ4Compression;
    // Every family already on disk (RocksDB must open them all), plus the store's own.
    std::vector<std::string> names;
    std::error_code ec;
    const bool exists = fs::exists(path / "CURRENT", ec);
    if (opt.read_only && !exists)
      throw Error(ErrorKind::Io, fmt::format("no liber state store at {}", path.string()));
    if (exists) {
      const rocksdb::Status listed = rocksdb::DB::ListColumnFamilies(options, path.string(), &names);
      if (!listed.ok())
        throw Error(ErrorKind::Io, fmt::format("cannot open the state store at {}: {}",
                                               path.string(), listed.ToString()));
    }
    for (const Family own : {kMetaFamily, kProgressFamily})
      if (!opt.read_only && std::find(names.begin(), names.end(), own.name) == names.end())
        names.emplace_back(own.name);
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    families.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options_);
    for (const auto& n : names)
      if (n != rocksdb::kDefaultColumnFamilyName) families.emplace_back(n, cf_options_);
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s =
        opt.read_only ? rocksdb::DB::OpenForReadOnly(options, path.string(), families, &handles, &db)
                      : rocksdb::DB::Open(options, path.string(), families, &handles, &db);
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
    for (std::size_t i = 1; i < handles.size(); ++i) cfs_.emplace(families[i].name, handles[i]);
  }

  ~RocksStore() override {
    if (!db_) return;
    for (auto& [name, h] : cfs_) db_->DestroyColumnFamilyHandle(h);
    db_->DestroyColumnFamilyHandle(default_);
    db_->Close();
  }

  std::optional<std::string> get(Family f, std::string_view key) override {
    auto* h = find(f.name);
    if (!h) return std::nullopt;  // never written: empty
    std::string value;
    rocksdb::Status s = db_->Get(read_opts_, h, slice(key), &value);
    if (s.IsNotFound()) return std::nullopt;
    check(s, "read");
    return value;
  }

  std::vector<std::optional<std::string>> multi_get(Family f,
                                                    std::span<const std::string> keys) override {
    auto* h = find(f.name);
    if (!h) return std::vector<std::optional<std::string>>(keys.size());
    std::vector<rocksdb::Slice> slices;
    slices.reserve(keys.size());
    for (const auto& k : keys) slices.emplace_back(k);
    std::vector<rocksdb::ColumnFamilyHandle*> handles(keys.size(), h);
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
    auto* h = find(f.name);
    if (!h) return;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_opts_, h));
    for (it->Seek(slice(prefix)); it->Valid(); it->Next()) {
      const rocksdb::Slice k = it->key();
      if (!k.starts_with(slice(prefix))) break;
      const rocksdb::Slice v = it->value();
      if (!fn({k.data(), k.size()}, {v.data(), v.size()})) break;
    }
    check(it->status(), "scan");
  }

  std::unique_ptr<WriteBatch> new_batch() override {
    return std::make_unique<RocksBatch>(
        [this](std::string_view name, bool create) { return create ? family(name) : find(name); });
  }

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
    std::shared_lock lock(mutex_);
    for (auto& [name, h] : cfs_) check(db_->Flush(fo, h), "flush");
  }

  StoreSize size() override {
    StoreSize out;
    std::shared_lock lock(mutex_);
    for (auto& [name, h] : cfs_) {
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

  std::vector<std::string> families() override {
    std::shared_lock lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [name, h] : cfs_) out.push_back(name);
    return out;  // std::map: sorted
  }

 private:
  // The family's handle, or null when the store does not have it.
  rocksdb::ColumnFamilyHandle* find(std::string_view name) {
    std::shared_lock lock(mutex_);
    auto it = cfs_.find(name);
    return it == cfs_.end() ? nullptr : it->second;
  }

  // The family's handle, created when missing (a write to it).
  rocksdb::ColumnFamilyHandle* family(std::string_view name) {
    if (auto* h = find(name)) return h;
    if (read_only_)
      throw Error(ErrorKind::Io,
                  fmt::format("the state store at {} is open read-only", path_.string()));
    const bool valid = !name.empty() && name != rocksdb::kDefaultColumnFamilyName &&
                       std::all_of(name.begin(), name.end(), [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                       });
    LIBER_ASSERT(valid);  // family names are constants in the code
    std::unique_lock lock(mutex_);
    if (auto it = cfs_.find(name); it != cfs_.end()) return it->second;
    rocksdb::ColumnFamilyHandle* h = nullptr;
    check(db_->CreateColumnFamily(cf_options_, std::string(name), &h), "create family");
    cfs_.emplace(std::string(name), h);
    return h;
  }

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
  rocksdb::ColumnFamilyOptions cf_options_;
  std::shared_mutex mutex_;  // guards cfs_ (a write may create a family)
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> cfs_;
  rocksdb::ReadOptions read_opts_;
};

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const fs::path& path, const StoreOptions& options) {
  return std::make_unique<RocksStore>(path, options);
}

}  // namespace liber
