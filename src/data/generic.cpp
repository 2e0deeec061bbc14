// Reader for liber's generic behavior-log format ("your own data").
//
// THE FORMAT
//
// Up to three files; each is CSV (".csv") or JSON Lines (".jsonl" or ".ndjson"), chosen by
// its extension, and each is UTF-8 (a leading byte-order mark is ignored).
//
// 1. Events (required): one behavior per row.
//      user_id    any non-empty text (numbers are fine; they are used as text)
//      item_id    any non-empty text; must appear in the item catalog
//      timestamp  integer seconds since 1970-01-01 UTC (>= 0), or ISO-8601
//                 "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]" with an optional "Z" or
//                 "+HH:MM"/"-HH:MM" offset (UTC when none; a space may replace the "T")
//      rating     a number (optional column)
//      label      0 or 1 (optional column; JSON true/false also accepted)
//    At least one of rating and label is required; when a row has no label, it is derived
//    later from the rating (rating >= the like threshold, 4 by default, is a like). Other
//    columns are ignored. Rows keep their file order.
//
// 2. Item catalog (required): one item per row.
//      item_id    as in the events (each id once)
//      title      the item's text, may be empty
//      year       optional integer (empty = unknown)
//    Every other column is a categorical attribute (genre, brand, category, ...), named by
//    its column. In CSV a value holding '|' has several values ("Comedy|Drama"); in JSONL a
//    JSON array has several values (strings are single values). Empty or null = missing.
//
// 3. User table (optional): user_id plus categorical attribute columns, as for items.
//
// CSV: the first row is the header (column names; user_id/item_id/... are matched
// case-insensitively). Fields are separated by ','; a field may be enclosed in double
// quotes, inside which ',' and line breaks are literal and "" stands for one '"'.
// JSONL: one JSON object per line, keys as the column names above; values may be strings
// or numbers (ids, timestamp, rating, year), null or absent for missing.
// Blank lines are ignored in both.
//
// Example events.csv:          Example items.csv:
//   user_id,item_id,timestamp,rating     item_id,title,year,genres
//   u1,i9,1700000000,5                   i9,"Heat, the movie",1995,Action|Crime
//   u1,i3,2023-11-14T22:13:20Z,3         i3,Toy Story,1995,Animation
//
// BAD INPUT (the same for MovieLens)
//   malformed row (wrong field count, unparsable id/number/timestamp, negative timestamp,
//     broken quoting or JSON): error "FILE:LINE: expected ..., found ..."; with
//     skip_bad_lines the row is skipped, counted and noted instead.
//   empty or missing file: error naming the file.
//   event whose item is not in the catalog: dropped, counted, noted.
//   event whose user is not in a given user table: kept; the user gets missing attributes.
//   same (user, item, timestamp) again: later copies dropped, counted.
//   invalid UTF-8: the bad bytes become U+FFFD, counted per field (per line in JSONL).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/data.h"
#include "liber/data/collect.h"
#include "liber/data/text_io.h"
#include "liber/error.h"

namespace liber {
namespace {

namespace fs = std::filesystem;
using data::BadLines;
using data::excerpt;
using json = nlohmann::ordered_json;  // keeps JSONL key order, so attribute order is stable

enum class Format { Csv, Jsonl };

Format format_of(const fs::path& path, std::string_view role) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".csv") return Format::Csv;
  if (ext == ".jsonl" || ext == ".ndjson") return Format::Jsonl;
  throw Error(ErrorKind::Config,
              fmt::format("{} file {}: expected a .csv or .jsonl file name, found extension "
                          "\"{}\"",
                          role, path.string(), ext));
}

std::string lower(std::string_view s) {
  std::string out(data::trim(s));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// One cell of a row: absent (JSONL key missing or null), a text, or a JSON array. A JSON
// value no column can use (an object, nested arrays) only fails the row if it is read.
struct Cell {
  bool present = false;
  bool list = false;
  std::string text;
  std::vector<std::string> items;
  std::string unusable;  // e.g. "a JSON object"; empty when the value is usable

  // What a column expecting one scalar found instead, or empty when it is one.
  std::string not_scalar() const {
    if (!unusable.empty()) return unusable;
    return list ? "an array" : std::string();
  }
};

// Rows of a CSV or JSONL file as cells indexed like columns(). Malformed rows go to
// BadLines (thrown or skipped). In JSONL, columns() grows as new keys appear.
class TableFile {
 public:
  TableFile(const fs::path& path, std::string_view role, const ReadOptions& opt,
            ReadReport& report)
      : file_(path.string()),
        format_(format_of(path, role)),
        text_(data::read_text_file(path)),
        bad_(file_, opt, report),
        report_(report) {
    body_ = data::strip_bom(text_);
    if (body_.find_first_not_of(" \t\r\n") == std::string_view::npos)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("{} file {} is empty", role, file_));
    valid_utf8_ = data::is_valid_utf8(body_);
    if (format_ == Format::Csv) {
      csv_ = data::CsvReader(body_);
      std::vector<std::string> header;
      std::string error;
      csv_.next(header, error);
      if (!error.empty()) throw Error::parse(file_, csv_.line(), error);
      for (std::string& name : header) {
        if (!valid_utf8_) sanitize_utf8(name);
        std::string trimmed(data::trim(name));
        if (trimmed.empty())
          throw Error::parse(file_, csv_.line(),
                             fmt::format("expected a header row of column names, found an "
                                         "empty name in column {}",
                                         columns_.size() + 1));
        if (column_of(trimmed) >= 0)
          throw Error::parse(file_, csv_.line(),
                             fmt::format("expected distinct column names, found \"{}\" twice",
                                         trimmed));
        add_column(std::move(trimmed));
      }
    } else {
      lines_ = data::Lines(body_);
    }
  }

  bool csv() const { return format_ == Format::Csv; }
  const std::string& file() const { return file_; }
  const std::vector<std::string>& columns() const { return columns_; }
  std::size_t line() const { return line_; }
  std::size_t rows_seen() const { return rows_seen_; }
  BadLines& bad() { return bad_; }

  // Index of the column whose name, case-insensitively, is `name`; -1 when none.
  int column_of(std::string_view name) const {
    auto it = by_lower_name_.find(lower(name));
    return it == by_lower_name_.end() ? -1 : static_cast<int>(it->second);
  }

  bool next(std::vector<Cell>& cells) {
    return format_ == Format::Csv ? next_csv(cells) : next_jsonl(cells);
  }

 private:
  void add_column(std::string name) {
    by_lower_name_.emplace(lower(name), columns_.size());
    columns_.push_back(std::move(name));
  }

  void count_invalid_utf8(std::string_view where) {
    ++report_.invalid_utf8_fields;
    if (++utf8_notes_ <= data::kNotesPerKind)
      report_.note(fmt::format("{}:{}: invalid UTF-8 in {} replaced by U+FFFD", file_, line_,
                               where));
  }

  bool next_csv(std::vector<Cell>& cells) {
    while (true) {
      if (!csv_.next(fields_, error_)) return false;
      line_ = csv_.line();
      ++rows_seen_;
      if (!error_.empty()) {
        bad_(line_, error_);
        continue;
      }
      if (fields_.size() != columns_.size()) {
        std::string raw;
        for (std::size_t i = 0; i < fields_.size(); ++i) raw += (i ? "," : "") + fields_[i];
        bad_(line_, fmt::format("expected {} comma-separated fields like the header, found {} "
                                "in {}",
                                columns_.size(), fields_.size(), excerpt(raw)));
        continue;
      }
      cells.resize(columns_.size());
      for (std::size_t i = 0; i < fields_.size(); ++i) {
        Cell& c = cells[i];
        c.present = true;
        c.list = false;
        c.text = std::move(fields_[i]);
        if (!valid_utf8_ && sanitize_utf8(c.text) > 0)
          count_invalid_utf8(fmt::format("column \"{}\"", columns_[i]));
      }
      return true;
    }
  }

  // JSON scalars as text; integral floats print as integers so 1.7e9 is a valid timestamp.
  static bool scalar_text(const json& v, std::string& out) {
    switch (v.type()) {
      case json::value_t::string: out = v.get_ref<const std::string&>(); return true;
      case json::value_t::number_integer: out = std::to_string(v.get<int64_t>()); return true;
      case json::value_t::number_unsigned: out = std::to_string(v.get<uint64_t>()); return true;
      case json::value_t::number_float: {
        const double d = v.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
          out = std::to_string(static_cast<int64_t>(d));
        else
          out = fmt::format("{}", d);
        return true;
      }
      case json::value_t::boolean: out = v.get<bool>() ? "true" : "false"; return true;
      default: return false;
    }
  }

  bool next_jsonl(std::vector<Cell>& cells) {
    std::string_view raw;
    while (lines_.next(raw)) {
      if (data::is_blank(raw)) continue;
      line_ = lines_.number();
      ++rows_seen_;
      std::string text(raw);
      if (!valid_utf8_ && sanitize_utf8(text) > 0) count_invalid_utf8("this line");
      json row;
      try {
        row = json::parse(text);
      } catch (const json::parse_error& e) {
        std::string what = e.what();
        if (auto p = what.find("syntax error"); p != std::string::npos) what = what.substr(p);
        bad_(line_, fmt::format("expected one JSON object per line, found invalid JSON ({}) "
                                "in {}",
                                what, excerpt(raw)));
        continue;
      }
      if (!row.is_object()) {
        bad_(line_, fmt::format("expected a JSON object, found a JSON {} in {}",
                                row.type_name(), excerpt(raw)));
        continue;
      }
      for (Cell& c : cells) c.present = false;
      for (auto it = row.begin(); it != row.end(); ++it) {
        int col = column_of(it.key());
        if (col < 0) {
          add_column(it.key());
          col = static_cast<int>(columns_.size()) - 1;
        }
        if (cells.size() < columns_.size()) cells.resize(columns_.size());
        Cell& c = cells[static_cast<std::size_t>(col)];
        const json& v = it.value();
        if (v.is_null()) continue;
        c.present = true;
        c.list = v.is_array();
        c.items.clear();
        c.text.clear();
        c.unusable.clear();
        if (c.list) {
          for (const json& e : v) {
            std::string s;
            if (e.is_null()) continue;
            if (!scalar_text(e, s)) {
              c.unusable = fmt::format("an array holding a JSON {}", e.type_name());
              break;
            }
            c.items.push_back(std::move(s));
          }
        } else if (!scalar_text(v, c.text)) {
          c.unusable = fmt::format("a JSON {}", v.type_name());
        }
      }
      cells.resize(columns_.size());
      return true;
    }
    return false;
  }

  std::string file_;
  Format format_;
  std::string text_;
  std::string_view body_;
  bool valid_utf8_ = true;
  BadLines bad_;
  ReadReport& report_;
  data::CsvReader csv_{std::string_view()};
  data::Lines lines_{std::string_view()};
  std::vector<std::string> columns_;
  std::unordered_map<std::string, std::size_t> by_lower_name_;
  std::vector<std::string> fields_;
  std::string error_;
  std::size_t line_ = 0;
  std::size_t rows_seen_ = 0;
  std::size_t utf8_notes_ = 0;
};

const Cell* cell_at(const std::vector<Cell>& cells, int col) {
  if (col < 0 || static_cast<std::size_t>(col) >= cells.size()) return nullptr;
  const Cell& c = cells[static_cast<std::size_t>(col)];
  return c.present ? &c : nullptr;
}

// A required single text value; reports the row as bad and returns nullopt otherwise.
std::optional<std::string> required_text(TableFile& t, const std::vector<Cell>& cells, int col,
                                         std::string_view name) {
  const Cell* c = cell_at(cells, col);
  if (c == nullptr) {
    t.bad()(t.line(), fmt::format("expected a value for \"{}\", found none", name));
    return std::nullopt;
  }
  if (const std::string other = c->not_scalar(); !other.empty()) {
    t.bad()(t.line(), fmt::format("expected a single value for \"{}\", found {}", name, other));
    return std::nullopt;
  }
  return std::string(data::trim(c->text));
}

std::optional<std::string> required_id(TableFile& t, const std::vector<Cell>& cells, int col,
                                       std::string_view name) {
  auto id = required_text(t, cells, col, name);
  if (id && id->empty()) {
    t.bad()(t.line(), fmt::format("expected a non-empty {}, found an empty one", name));
    return std::nullopt;
  }
  return id;
}

void require_columns(TableFile& t, std::initializer_list<std::string_view> names,
                     std::string_view expected) {
  if (!t.csv()) return;  // JSONL rows are checked one by one
  for (std::string_view name : names) {
    if (t.column_of(name) >= 0) continue;
    std::string found;
    for (const std::string& c : t.columns()) found += (found.empty() ? "" : ",") + c;
    throw Error::parse(t.file(), 1,
                       fmt::format("expected a header with {}, found {} (no \"{}\")", expected,
                                   excerpt(found, 200), name));
  }
}

void require_rows(const TableFile& t, std::string_view role) {
  if (t.rows_seen() == 0)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("{} file {} has a header but no data rows", role, t.file()));
}

// The attribute columns of a table (all but `reserved`), created lazily since JSONL keys
// appear as rows go; a late attribute gets empty rows for the rows before it.
class AttributeColumns {
 public:
  AttributeColumns(std::vector<Attribute>& attributes,
                   std::initializer_list<std::string_view> reserved)
      : attributes_(attributes), reserved_(reserved) {}

  void sync(const TableFile& t, std::size_t existing_rows) {
    const auto& cols = t.columns();
    for (std::size_t c = attr_of_column_.size(); c < cols.size(); ++c) {
      const std::string name = lower(cols[c]);
      if (std::find(reserved_.begin(), reserved_.end(), name) != reserved_.end()) {
        attr_of_column_.push_back(-1);
        continue;
      }
      Attribute a = data::make_attribute(cols[c], /*multi=*/false);
      for (std::size_t r = 1; r < existing_rows; ++r) a.push_row({});
      attr_of_column_.push_back(static_cast<int>(attributes_.size()));
      attributes_.push_back(std::move(a));
    }
  }

  // Values of every attribute for one row ('|' splits text; arrays are lists). Returns
  // false, with the row reported bad, when a value cannot be an attribute value.
  bool collect(TableFile& t, const std::vector<Cell>& cells,
               std::vector<std::vector<std::string>>& values, std::vector<char>& multi) const {
    values.assign(attributes_.size(), {});
    multi.assign(attributes_.size(), 0);
    for (std::size_t c = 0; c < attr_of_column_.size(); ++c) {
      const int a = attr_of_column_[c];
      const Cell* cell = cell_at(cells, static_cast<int>(c));
      if (a < 0 || cell == nullptr) continue;
      auto& out = values[static_cast<std::size_t>(a)];
      if (!cell->unusable.empty()) {
        t.bad()(t.line(), fmt::format("expected a string, number or array of those for \"{}\", "
                                      "found {}",
                                      t.columns()[c], cell->unusable));
        return false;
      }
      if (cell->list) {
        for (const std::string& s : cell->items) out.emplace_back(data::trim(s));
        multi[static_cast<std::size_t>(a)] = 1;
      } else if (!t.csv()) {
        out.emplace_back(data::trim(cell->text));  // JSONL has arrays for several values
      } else {
        std::vector<std::string_view> parts;
        data::split(cell->text, '|', parts);
        for (std::string_view p : parts) out.emplace_back(data::trim(p));
        if (parts.size() > 1) multi[static_cast<std::size_t>(a)] = 1;
      }
    }
    return true;
  }

  void push(const std::vector<std::vector<std::string>>& values, const std::vector<char>& multi) {
    for (std::size_t a = 0; a < attributes_.size(); ++a) {
      attributes_[a].push_row(values[a]);
      if (multi[a]) attributes_[a].multi = true;
    }
  }

 private:
  std::vector<Attribute>& attributes_;
  std::vector<std::string_view> reserved_;
  std::vector<int> attr_of_column_;
};

// The next row of an entity table (items, users) with a new id: the id, or nullopt at the
// end. A row with a missing or repeated id is reported as bad and skipped.
std::optional<std::string> next_new_id(TableFile& t, std::vector<Cell>& cells,
                                       AttributeColumns& attrs, const Vocab& ids,
                                       const char* column) {
  while (t.next(cells)) {
    attrs.sync(t, ids.size());
    auto id = required_id(t, cells, t.column_of(column), column);
    if (!id) continue;
    if (ids.find(*id) != 0) {
      t.bad()(t.line(), fmt::format("expected each {} once, found {} again", column, excerpt(*id)));
      continue;
    }
    return id;
  }
  return std::nullopt;
}

// An entity table read to its end must have given at least one entity.
void require_entities(const TableFile& t, const Vocab& ids, const char* role) {
  require_rows(t, role);
  if (ids.size() <= 1)
    throw Error(ErrorKind::InvalidInput, fmt::format("{} file {}: no valid rows", role, t.file()));
}

void read_items(const fs::path& path, ItemCatalog& items, const ReadOptions& opt,
                ReadReport& report) {
  TableFile t(path, "item catalog", opt, report);
  require_columns(t, {"item_id", "title"}, "columns item_id,title[,year][,attributes...]");
  items.titles.assign(1, std::string());
  items.years.assign(1, 0);
  AttributeColumns attrs(items.attributes, {"item_id", "title", "year"});
  std::vector<Cell> cells;
  std::vector<std::vector<std::string>> values;
  std::vector<char> multi;
  while (auto id = next_new_id(t, cells, attrs, items.ids, "item_id")) {
    auto title = required_text(t, cells, t.column_of("title"), "title");
    if (!title) continue;
    int year = 0;
    if (const Cell* y = cell_at(cells, t.column_of("year"))) {
      const std::string_view text = data::trim(y->text);
      const std::string other = y->not_scalar();
      if (!other.empty() || (!text.empty() && !data::parse_int(text, year))) {
        t.bad()(t.line(), fmt::format("expected an integer year, found {}",
                                      other.empty() ? excerpt(text) : other));
        continue;
      }
    }
    if (!attrs.collect(t, cells, values, multi)) continue;
    items.ids.add(*id);
    items.titles.push_back(std::move(*title));
    items.years.push_back(year);
    attrs.push(values, multi);
  }
  require_entities(t, items.ids, "item catalog");
}

void read_users(const fs::path& path, UserTable& users, const ReadOptions& opt,
                ReadReport& report) {
  TableFile t(path, "user table", opt, report);
  require_columns(t, {"user_id"}, "columns user_id[,attributes...]");
  AttributeColumns attrs(users.attributes, {"user_id"});
  std::vector<Cell> cells;
  std::vector<std::vector<std::string>> values;
  std::vector<char> multi;
  while (auto id = next_new_id(t, cells, attrs, users.ids, "user_id")) {
    if (!attrs.collect(t, cells, values, multi)) continue;
    users.ids.add(*id);
    attrs.push(values, multi);
  }
  require_entities(t, users.ids, "user table");
}

void read_events(const fs::path& path, BehaviorLog& log, const ReadOptions& opt,
                 bool user_table) {
  TableFile t(path, "events", opt, log.report);
  require_columns(t, {"user_id", "item_id", "timestamp"},
                  "columns user_id,item_id,timestamp and rating and/or label");
  if (t.csv() && t.column_of("rating") < 0 && t.column_of("label") < 0)
    throw Error::parse(t.file(), 1,
                       "expected a header with a rating or a label column (or both), found "
                       "neither");
  data::EventCollector events(log, opt, t.file(), user_table);
  std::vector<Cell> cells;
  int c_user = -1, c_item = -1, c_ts = -1, c_rating = -1, c_label = -1;
  std::size_t known_columns = 0;
  while (t.next(cells)) {
    if (t.columns().size() != known_columns) {  // JSONL may add keys as it goes
      known_columns = t.columns().size();
      c_user = t.column_of("user_id");
      c_item = t.column_of("item_id");
      c_ts = t.column_of("timestamp");
      c_rating = t.column_of("rating");
      c_label = t.column_of("label");
    }
    auto& bad = t.bad();
    const std::size_t line = t.line();
    auto user = required_id(t, cells, c_user, "user_id");
    if (!user) continue;
    auto item = required_id(t, cells, c_item, "item_id");
    if (!item) continue;
    auto ts_text = required_text(t, cells, c_ts, "timestamp");
    if (!ts_text) continue;
    int64_t ts;
    if (!data::parse_int(*ts_text, ts) && !data::parse_iso8601(*ts_text, ts)) {
      bad(line, fmt::format("expected a timestamp in integer seconds since 1970 or ISO-8601 "
                            "(2023-11-14T22:13:20Z), found {}",
                            excerpt(*ts_text)));
      continue;
    }
    if (ts < 0) {
      bad(line, fmt::format("expected a timestamp at or after 1970-01-01 (>= 0), found {}",
                            excerpt(*ts_text)));
      continue;
    }
    float rating = NAN;
    if (const Cell* r = cell_at(cells, c_rating)) {
      const std::string_view text = data::trim(r->text);
      const std::string other = r->not_scalar();
      if (!other.empty() || (!text.empty() && !data::parse_float(text, rating))) {
        bad(line, fmt::format("expected a numeric rating, found {}",
                              other.empty() ? excerpt(text) : other));
        continue;
      }
    }
    int8_t label = -1;
    if (const Cell* l = cell_at(cells, c_label)) {
      const std::string_view text = data::trim(l->text);
      const std::string other = l->not_scalar();
      if (other.empty() && (text == "1" || text == "true")) {
        label = 1;
      } else if (other.empty() && (text == "0" || text == "false")) {
        label = 0;
      } else if (!other.empty() || !text.empty()) {
        bad(line, fmt::format("expected a label 0 or 1, found {}",
                              other.empty() ? excerpt(text) : other));
        continue;
      }
    }
    if (std::isnan(rating) && label < 0) {
      bad(line, "expected a rating or a label, found neither");
      continue;
    }
    events.add(*user, *item, ts, rating, label, line);
  }
  require_rows(t, "events");
  log.report.lines = t.rows_seen();
  events.finish();
  if (log.events.empty())
    throw Error(ErrorKind::InvalidInput,
                fmt::format("events file {}: no usable events ({} rows, {} malformed, {} with "
                            "items not in the catalog)",
                            t.file(), log.report.lines, log.report.skipped_bad_lines,
                            log.report.unknown_item_events));
}

// The item attribute named `name` in any case, as the format matches every column name.
const Attribute* attribute_any_case(const ItemCatalog& items, std::string_view name) {
  const std::string wanted = lower(name);
  for (const Attribute& a : items.attributes)
    if (lower(a.name) == wanted) return &a;
  return nullptr;
}

// The nouns the caller named, else "item" and default_category. A category that is no item
// attribute is a user error: prompts and the verifier would profile nothing.
Domain generic_domain(const GenericPaths& paths, const ItemCatalog& items) {
  Domain d;
  if (!paths.item_noun.empty()) {
    const std::size_t comma = paths.item_noun.find(',');
    d.item = paths.item_noun.substr(0, comma);
    d.items = comma == std::string::npos ? d.item + "s" : paths.item_noun.substr(comma + 1);
    if (d.item.empty() || d.items.empty())
      throw Error(ErrorKind::Config,
                  fmt::format("item noun '{}': give a noun, or the singular and plural as "
                              "'song,songs'",
                              paths.item_noun));
  }
  if (paths.category.empty()) {
    d.category = default_category(items);
    return d;
  }
  if (const Attribute* a = attribute_any_case(items, paths.category)) {
    d.category = a->name;
    return d;
  }
  std::string names;
  for (const Attribute& a : items.attributes) names += (names.empty() ? "" : ", ") + a.name;
  throw Error(ErrorKind::Config,
              fmt::format("category '{}' is not a column of the item catalog {} (its attributes: {})",
                          paths.category, paths.items.string(), names.empty() ? "none" : names));
}

}  // namespace

std::string default_category(const ItemCatalog& items) {
  if (const Attribute* genres = attribute_any_case(items, "genres")) return genres->name;
  for (const Attribute& a : items.attributes)
    if (a.multi) return a.name;
  return items.attributes.empty() ? std::string() : items.attributes.front().name;
}

BehaviorLog read_generic(const GenericPaths& paths, const ReadOptions& opt) {
  if (paths.events.empty())
    throw Error(ErrorKind::Config, "generic dataset: no events file given");
  if (paths.items.empty())
    throw Error(ErrorKind::Config, "generic dataset: no item catalog file given");
  BehaviorLog log;
  log.name = paths.name;
  read_items(paths.items, log.items, opt, log.report);
  log.domain = generic_domain(paths, log.items);  // a wrong category fails before the events are read
  const bool user_table = !paths.users.empty();
  if (user_table) read_users(paths.users, log.users, opt, log.report);
  read_events(paths.events, log, opt, user_table);
  log.description = fmt::format(
      "{} ({}): {} events, {} users, {} items", log.name, paths.events.filename().string(),
      data::with_commas(log.events.size()), data::with_commas(data::distinct_users(log)),
      data::with_commas(log.items.size() - 1));
  if (opt.max_users > 0)
    log.description += fmt::format(", limited to the first {} users",
                                   data::with_commas(opt.max_users));
  return log;
}

}  // namespace liber
