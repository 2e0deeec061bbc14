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

SampleBuilder::SampleBuilder(const BehaviorLog& catalog, int history_length) : catalog_(catalog) {
  if (history_length < 1) throw Error(ErrorKind::Config, "history length must be at least 1");
  // A single-valued attribute becomes a sparse field, a multi-valued one a sequence field
  // as long as its longest row.
  auto add_attributes = [&](const std::vector<Attribute>& attributes, const char* prefix, bool user) {
    for (const Attribute& a : attributes) {
      std::string name = fmt::format("{}{}", prefix, a.name);
      const Column col{user ? Column::UserAttr : Column::ItemAttr, &a};
      if (a.multi) {
        int len = static_cast<int>(std::max<std::size_t>(1, a.max_row_length()));
        schema_.sequences.push_back({name, a.vocab.size(), len, ""});
        sequences_.push_back(col);
      } else {
        schema_.sparse.push_back({name, a.vocab.size()});
        sparse_.push_back(col);
      }
    }
  };
  schema_.sparse.push_back({"user_id", catalog.users.ids.size()});
  sparse_.push_back({Column::UserId});
  add_attributes(catalog.users.attributes, "user_", true);
  schema_.target_item_field = static_cast<int>(schema_.sparse.size());
  schema_.sparse.push_back({"item_id", catalog.items.ids.size()});
  sparse_.push_back({Column::ItemId});
  // Release years become a categorical field: ids in order of the year value.
  std::map<int, int64_t> year_ids;
  for (int y : catalog.items.years)
    if (y > 0) year_ids.emplace(y, 0);
  if (!year_ids.empty()) {
    int64_t next = 1;
    for (auto& [y, id] : year_ids) id = next++;
    schema_.sparse.push_back({"item_year", next});
    sparse_.push_back({Column::ItemYear});
    year_ids_.assign(catalog.items.years.size(), 0);
    for (std::size_t row = 0; row < catalog.items.years.size(); ++row)
      if (int y = catalog.items.years[row]; y > 0) year_ids_[row] = year_ids.at(y);
  }
  add_attributes(catalog.items.attributes, "item_", false);
  schema_.history_field = static_cast<int>(schema_.sequences.size());
  schema_.sequences.push_back({"history_item_ids", catalog.items.ids.size(), history_length, "item_id"});
  sequences_.push_back({Column::History});
  for (const auto& f : schema_.sequences) sequence_width_ += static_cast<std::size_t>(f.length);
}

void SampleBuilder::append(SampleSet& set, uint32_t user, uint32_t item, int64_t ts,
                           std::span<const uint32_t> history, float label) const {
  for (const Column& c : sparse_) {
    int64_t v = 0;
    switch (c.kind) {
      case Column::UserId: v = user; break;
      case Column::ItemId: v = item; break;
      case Column::UserAttr:
        if (user < c.attr->rows())
          if (auto r = c.attr->row(user); !r.empty()) v = r[0];
        break;
      case Column::ItemAttr:
        if (item < c.attr->rows())
          if (auto r = c.attr->row(item); !r.empty()) v = r[0];
        break;
      case Column::ItemYear:
        if (item < year_ids_.size()) v = year_ids_[item];
        break;
      case Column::History: break;
    }
    set.sparse.push_back(v);
  }
  const std::size_t first = set.sequences.size();
  set.sequences.resize(first + sequence_width_, 0);
  int64_t* row = set.sequences.data() + first;
  for (std::size_t f = 0; f < sequences_.size(); ++f) {
    const auto len = static_cast<std::size_t>(schema_.sequences[f].length);
    const Column& c = sequences_[f];
    if (c.kind == Column::History) {
      for (std::size_t k = 0; k < len && k < history.size(); ++k) row[k] = history[k];
    } else {
      const std::size_t r = c.kind == Column::UserAttr ? user : item;
      if (r < c.attr->rows()) {
        auto codes = c.attr->row(r);
        for (std::size_t k = 0; k < len && k < codes.size(); ++k) row[k] = codes[k];
      }
    }
    row += len;
  }
  set.labels.push_back(label);
  set.users.push_back(user);
  set.timestamps.push_back(ts);
}

CtrDataset build_ctr_dataset(const BehaviorLog& log, const SplitConfig& config) {
  if (log.events.empty())
    throw Error(ErrorKind::InvalidInput, fmt::format("dataset '{}' has no events", log.name));
  if (config.test_fraction < 0 || config.test_fraction >= 1 || config.valid_fraction < 0 ||
      config.valid_fraction >= 1)
    throw Error(ErrorKind::Config, "test and validation fractions must be in [0, 1)");
  const SampleBuilder builder(log, config.history_length);

  CtrDataset out;
  out.name = log.name;
  out.description = log.description;
  out.schema = builder.schema();

  // Each user's events in time order; ties keep file order (stable sort).
  std::vector<uint32_t> order(log.events.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const Event &x = log.events[a], &y = log.events[b];
    return x.user != y.user ? x.user < y.user : x.ts < y.ts;
  });

  const auto history_length = static_cast<std::size_t>(config.history_length);
  std::vector<uint32_t> history;
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
      const std::size_t pos = begin + static_cast<std::size_t>(i);
      const Event& e = log.events[order[pos]];
      // Most recent first; only events strictly earlier in the user's timeline.
      history.clear();
      for (std::size_t k = 0; k < history_length && k < pos - begin; ++k)
        history.push_back(log.events[order[pos - 1 - k]].item);
      const bool like = e.label >= 0 ? e.label > 0 : e.rating >= log.like_threshold;
      builder.append(set, e.user, e.item, e.ts, history, like ? 1.0f : 0.0f);
    }
    begin = end;
  }
  return out;
}

namespace {

// A CSV field: quoted when it holds a comma, a quote or a line break (external user ids are
// free text in the generic format).
void append_csv_field(std::string& line, const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) {
    line += value;
    return;
  }
  line += '"';
  for (char c : value) line += c == '"' ? std::string("\"\"") : std::string(1, c);
  line += '"';
}

void write_split(const CtrDataset& data, const Vocab& users, const SampleSet& set, const std::filesystem::path& file) {
  std::ofstream out(file);
  if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write {}", file.string()));
  const FeatureSchema& schema = data.schema;
  std::string line;
  for (const auto& f : schema.sparse) line += f.name + ",";
  for (const auto& f : schema.sequences) line += f.name + ",";
  line += "label,user,timestamp\n";
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
    fmt::format_to(std::back_inserter(line), "{},", static_cast<int>(set.labels[i]));
    const uint32_t u = set.users[i];
    append_csv_field(line, u < users.size() ? users.key(u) : std::string());
    fmt::format_to(std::back_inserter(line), ",{}\n", set.timestamps[i]);
    out << line;
  }
  if (!out) throw Error(ErrorKind::Io, fmt::format("write failed: {}", file.string()));
}

}  // namespace

void export_ctr_dataset_csv(const CtrDataset& data, const Vocab& users, const std::string& dir) {
  std::filesystem::create_directories(dir);
  write_split(data, users, data.train, std::filesystem::path(dir) / "train.csv");
  write_split(data, users, data.valid, std::filesystem::path(dir) / "valid.csv");
  write_split(data, users, data.test, std::filesystem::path(dir) / "test.csv");
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
