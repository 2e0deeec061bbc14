#include "liber/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>

#include <fmt/format.h>

#include "liber/error.h"

namespace liber {

int FeatureSchema::sparse_index(const std::string& name) const {
  for (std::size_t i = 0; i < sparse.size(); ++i)
    if (sparse[i].name == name) return static_cast<int>(i);
  return -1;
}

int FeatureSchema::sequence_index(const std::string& name) const {
  for (std::size_t i = 0; i < sequences.size(); ++i)
    if (sequences[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace {

// How one feature column is read off an event: the sample builder below walks these.
struct SparseSource {
  enum Kind { UserId, ItemId, UserAttr, ItemAttr, ItemYear } kind;
  const Attribute* attr = nullptr;
};
struct SequenceSource {
  enum Kind { UserAttr, ItemAttr, History } kind;
  const Attribute* attr = nullptr;
};

// A single-valued attribute becomes a sparse field, a multi-valued one a sequence field
// as long as its longest row.
template <typename Table>
void add_attribute_fields(const Table& table, const char* prefix, bool user_side,
                          FeatureSchema& schema, std::vector<SparseSource>& sparse,
                          std::vector<SequenceSource>& seqs) {
  for (const Attribute& a : table.attributes) {
    std::string name = fmt::format("{}{}", prefix, a.name);
    if (a.multi) {
      int len = static_cast<int>(std::max<std::size_t>(1, a.max_row_length()));
      schema.sequences.push_back({name, a.vocab.size(), len, ""});
      seqs.push_back({user_side ? SequenceSource::UserAttr : SequenceSource::ItemAttr, &a});
    } else {
      schema.sparse.push_back({name, a.vocab.size()});
      sparse.push_back({user_side ? SparseSource::UserAttr : SparseSource::ItemAttr, &a});
    }
  }
}

}  // namespace

CtrDataset build_ctr_dataset(const BehaviorLog& log, const SplitConfig& config) {
  if (log.events.empty())
    throw Error(ErrorKind::InvalidInput, fmt::format("dataset '{}' has no events", log.name));
  if (config.test_fraction < 0 || config.test_fraction >= 1 || config.valid_fraction < 0 ||
      config.valid_fraction >= 1)
    throw Error(ErrorKind::Config, "test and validation fractions must be in [0, 1)");
  if (config.history_length < 1)
    throw Error(ErrorKind::Config, "history length must be at least 1");

  CtrDataset out;
  out.name = log.name;
  out.description = log.description;
  FeatureSchema& schema = out.schema;
  std::vector<SparseSource> sparse_src;
  std::vector<SequenceSource> seq_src;

  // Field order: user id, user attributes, target item id, item attributes, history.
  schema.sparse.push_back({"user_id", log.users.ids.size()});
  sparse_src.push_back({SparseSource::UserId});
  add_attribute_fields(log.users, "user_", true, schema, sparse_src, seq_src);
  schema.target_item_field = static_cast<int>(schema.sparse.size());
  schema.sparse.push_back({"item_id", log.items.ids.size()});
  sparse_src.push_back({SparseSource::ItemId});
  // Release years become a categorical field: ids in order of the year value.
  std::map<int, int64_t> year_ids;
  for (int y : log.items.years)
    if (y > 0) year_ids.emplace(y, 0);
  if (!year_ids.empty()) {
    int64_t next = 1;
    for (auto& [y, id] : year_ids) id = next++;
    schema.sparse.push_back({"item_year", next});
    sparse_src.push_back({SparseSource::ItemYear});
  }
  add_attribute_fields(log.items, "item_", false, schema, sparse_src, seq_src);
  schema.history_field = static_cast<int>(schema.sequences.size());
  schema.sequences.push_back(
      {"history_item_ids", log.items.ids.size(), config.history_length, "item_id"});
  seq_src.push_back({SequenceSource::History});

  std::size_t seq_width = 0;
  for (const auto& s : schema.sequences) seq_width += static_cast<std::size_t>(s.length);

  // Each user's events in time order; ties keep file order (stable sort).
  std::vector<uint32_t> order(log.events.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const Event &x = log.events[a], &y = log.events[b];
    return x.user != y.user ? x.user < y.user : x.ts < y.ts;
  });

  std::vector<int64_t> seq_row(seq_width);
  auto emit = [&](SampleSet& set, std::size_t pos, std::size_t begin) {
    const Event& e = log.events[order[pos]];
    for (const SparseSource& src : sparse_src) {
      int64_t v = 0;
      switch (src.kind) {
        case SparseSource::UserId: v = e.user; break;
        case SparseSource::ItemId: v = e.item; break;
        case SparseSource::UserAttr:
          if (auto r = src.attr->row(e.user); !r.empty()) v = r[0];
          break;
        case SparseSource::ItemAttr:
          if (auto r = src.attr->row(e.item); !r.empty()) v = r[0];
          break;
        case SparseSource::ItemYear:
          if (int y = log.items.years[e.item]; y > 0) v = year_ids.at(y);
          break;
      }
      set.sparse.push_back(v);
    }
    std::fill(seq_row.begin(), seq_row.end(), 0);
    std::size_t off = 0;
    for (std::size_t f = 0; f < seq_src.size(); ++f) {
      const auto len = static_cast<std::size_t>(schema.sequences[f].length);
      const SequenceSource& src = seq_src[f];
      if (src.kind == SequenceSource::History) {
        // Most recent first; only events strictly earlier in the user's timeline.
        for (std::size_t k = 0; k < len && k < pos - begin; ++k)
          seq_row[off + k] = log.events[order[pos - 1 - k]].item;
      } else {
        auto r = src.attr->row(src.kind == SequenceSource::UserAttr ? e.user : e.item);
        for (std::size_t k = 0; k < len && k < r.size(); ++k) seq_row[off + k] = r[k];
      }
      off += len;
    }
    set.sequences.insert(set.sequences.end(), seq_row.begin(), seq_row.end());
    bool like = e.label >= 0 ? e.label > 0 : e.rating >= log.like_threshold;
    set.labels.push_back(like ? 1.0f : 0.0f);
    set.users.push_back(e.user);
    set.timestamps.push_back(e.ts);
  };

  for (std::size_t begin = 0; begin < order.size();) {
    std::size_t end = begin;
    const uint32_t user = log.events[order[begin]].user;
    while (end < order.size() && log.events[order[end]].user == user) ++end;
    const auto n = static_cast<long>(end - begin);
    const long n_test = std::lround(n * config.test_fraction);
    const long n_fit = n - n_test;
    const long n_valid = std::lround(n_fit * config.valid_fraction);
    const long n_train = n_fit - n_valid;
    for (long i = 0; i < n; ++i) {
      SampleSet& set = i < n_train ? out.train : (i < n_fit ? out.valid : out.test);
      emit(set, begin + static_cast<std::size_t>(i), begin);
    }
    begin = end;
  }
  return out;
}

namespace {

void write_split(const CtrDataset& data, const SampleSet& set, const std::filesystem::path& file) {
  std::ofstream out(file);
  if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write {}", file.string()));
  const FeatureSchema& schema = data.schema;
  std::string line;
  for (const auto& f : schema.sparse) line += f.name + ",";
  for (const auto& f : schema.sequences) line += f.name + ",";
  line += "label\n";
  out << line;
  const std::size_t n_sparse = schema.sparse.size();
  const std::size_t width = set.size() ? set.sequences.size() / set.size() : 0;
  for (std::size_t i = 0; i < set.size(); ++i) {
    line.clear();
    for (std::size_t f = 0; f < n_sparse; ++f) fmt::format_to(std::back_inserter(line), "{},", set.sparse[i * n_sparse + f]);
    std::size_t off = i * width;
    for (const auto& f : schema.sequences) {
      bool first = true;
      for (int k = 0; k < f.length; ++k) {
        int64_t v = set.sequences[off + static_cast<std::size_t>(k)];
        if (v == 0) continue;  // padding is implicit in the list form
        if (!first) line += '^';
        fmt::format_to(std::back_inserter(line), "{}", v);
        first = false;
      }
      off += static_cast<std::size_t>(f.length);
      line += ',';
    }
    fmt::format_to(std::back_inserter(line), "{}\n", static_cast<int>(set.labels[i]));
    out << line;
  }
  if (!out) throw Error(ErrorKind::Io, fmt::format("write failed: {}", file.string()));
}

}  // namespace

void export_ctr_dataset_csv(const CtrDataset& data, const std::string& dir) {
  std::filesystem::create_directories(dir);
  write_split(data, data.train, std::filesystem::path(dir) / "train.csv");
  write_split(data, data.valid, std::filesystem::path(dir) / "valid.csv");
  write_split(data, data.test, std::filesystem::path(dir) / "test.csv");
}

}  // namespace liber

namespace liber {

void add_sparse_field(CtrDataset& data, const SparseField& field,
                      const std::function<int64_t(const SampleSet&, std::size_t)>& value) {
  const std::size_t f = data.schema.sparse.size();
  for (SampleSet* set : {&data.train, &data.valid, &data.test}) {
    const std::size_t n = set->size();
    std::vector<int64_t> sparse;
    sparse.reserve(n * (f + 1));
    for (std::size_t i = 0; i < n; ++i) {
      sparse.insert(sparse.end(), set->sparse.begin() + static_cast<std::ptrdiff_t>(i * f),
                    set->sparse.begin() + static_cast<std::ptrdiff_t>((i + 1) * f));
      const int64_t v = value(*set, i);
      if (v < 0 || v >= field.vocab)
        throw Error(ErrorKind::InvalidInput,
                    fmt::format("add_sparse_field: field {} sample {}: value {} is outside [0, {})",
                                field.name, i, v, field.vocab));
      sparse.push_back(v);
    }
    set->sparse = std::move(sparse);
  }
  data.schema.sparse.push_back(field);
}

}  // namespace liber
