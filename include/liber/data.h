// Behavior logs: events, the item catalog and the user table, and the readers that load them
// from MovieLens-1M, MovieLens-100K, or liber's generic format (docs in README.md).
//
// External ids (strings in the files) map to dense indices through a Vocab; index 0 is
// reserved for "unknown/padding" so that every index is directly an embedding row.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace liber {

// String <-> dense id, 1-based (0 = unknown / padding).
class Vocab {
 public:
  Vocab();
  // Returns the id of `key`, adding it if new.
  uint32_t add(std::string_view key);
  // Returns the id of `key`, or 0 when absent.
  uint32_t find(std::string_view key) const;
  const std::string& key(uint32_t id) const { return keys_[id]; }
  // Number of ids including the reserved 0, i.e. the embedding-table size.
  uint32_t size() const { return static_cast<uint32_t>(keys_.size()); }

 private:
  std::vector<std::string> keys_;
  std::unordered_map<std::string, uint32_t> index_;
};

// One categorical attribute of a table's rows (genre, gender, age, ...), stored CSR so a
// row may carry several values (genres) or one (gender). Code 0 = missing.
struct Attribute {
  std::string name;
  bool multi = false;  // several values per row allowed
  Vocab vocab;
  std::vector<uint32_t> offsets{0};  // row r's codes are codes[offsets[r], offsets[r+1])
  std::vector<uint32_t> codes;
  // Text for people (prompts) of coded values, set by the dataset's reader: ML-1M's age
  // "25" -> "25-34", occupation "2" -> "artist". A value without one is its own text.
  std::unordered_map<std::string, std::string> labels;

  std::size_t rows() const { return offsets.size() - 1; }
  std::span<const uint32_t> row(std::size_t r) const {
    return {codes.data() + offsets[r], codes.data() + offsets[r + 1]};
  }
  // Appends one row from its string values (empty strings are skipped = missing).
  void push_row(std::span<const std::string> values);
  // Longest row, e.g. the most genres any item has.
  std::size_t max_row_length() const;
  // labels[value], or the value itself.
  std::string_view label(std::string_view value) const;
};

// Row i of every column belongs to the entity with Vocab id i (row 0 is the unknown entity).
struct ItemCatalog {
  Vocab ids;
  std::vector<std::string> titles;  // UTF-8
  std::vector<int> years;           // release year, 0 when unknown
  std::vector<Attribute> attributes;

  std::size_t size() const { return ids.size(); }
  const Attribute* attribute(std::string_view name) const;
};

struct UserTable {
  Vocab ids;
  std::vector<Attribute> attributes;

  std::size_t size() const { return ids.size(); }
  const Attribute* attribute(std::string_view name) const;
};

// One behavior. `user`/`item` are Vocab ids of the dataset's UserTable / ItemCatalog.
struct Event {
  uint32_t user = 0;
  uint32_t item = 0;
  int64_t ts = 0;          // seconds since the Unix epoch
  float rating = NAN;      // explicit rating, NaN when the source has only labels
  int8_t label = -1;       // explicit 0/1 label, -1 when it must be derived from the rating
};

// What a reader did with its input besides the events it returned.
struct ReadReport {
  std::size_t lines = 0;               // data lines seen (headers excluded)
  std::size_t skipped_bad_lines = 0;   // malformed lines skipped (only with skip_bad_lines)
  std::size_t duplicate_events = 0;    // same (user, item, ts) again: later copies dropped
  std::size_t unknown_item_events = 0; // item absent from the catalog: event dropped
  std::size_t unknown_user_events = 0; // user absent from a given user table: user added
  std::size_t invalid_utf8_fields = 0; // bytes replaced by U+FFFD in UTF-8 input
  std::vector<std::string> messages;   // the first few problems, "file:line: what"

  void note(std::string message);      // keeps at most kMaxMessages
  static constexpr std::size_t kMaxMessages = 20;
};

// The domain's nouns, so that prompts, the verifier and reports speak of a user's songs or
// products as they speak of MovieLens's movies. MovieLens readers set the movie wording;
// the generic reader takes them from --item-noun / --category (GenericPaths below).
struct Domain {
  std::string item = "item";    // one item: "movie", "song"
  std::string items = "items";  // plural
  // Other words a text may use for one item ("film"): the verifier's plot check.
  std::vector<std::string> item_synonyms;
  // The item attribute that says what kind of item it is ("genres"): the prompt's profile,
  // the verifier's genre checks and the shift rule's default. Empty: the catalog has none.
  std::string category;
  std::string rating_unit = "points";  // "5 stars: ..." in prompts; singular drops the "s"
  // What the prompt asks the model to weigh ({category}: the category noun). Empty: the
  // category (when there is one), themes, mood, era, quality.
  std::string facets;

  // "genres" -> "genre"; "categories" -> "category"; "brand" -> "brand".
  std::string category_singular() const;
  // "genres" -> "genres"; "brand" -> "brands".
  std::string category_plural() const;
};
Domain movie_domain();  // movie / movies / film, "genres", stars, the MovieLens facets
// The generic reader's choice when none is given: "genres" (in any case) if the catalog has
// it, else its first multi-valued attribute, else its first attribute, else none.
std::string default_category(const ItemCatalog& items);

struct BehaviorLog {
  std::string name;         // "ml-1m", "ml-100k", or the generic dataset's name
  std::string description;  // where it came from, shown beside every result
  Domain domain;
  ItemCatalog items;
  UserTable users;
  std::vector<Event> events;  // file order; builders sort as they need
  ReadReport report;
  // Ratings at or above this count as a like (label 1) when events carry no label.
  float like_threshold = 4.0f;
};

struct ReadOptions {
  // Skip malformed lines (counted in the report) instead of failing on the first one.
  bool skip_bad_lines = false;
  // Keep only the first N users by id order of first appearance (0 = all).
  std::size_t max_users = 0;
};

// Readers. Each throws liber::Error naming file and line for malformed input (unless
// skip_bad_lines), and ErrorKind::InvalidInput for an empty or missing file.
BehaviorLog read_movielens_1m(const std::filesystem::path& dir, const ReadOptions& opt = {});
BehaviorLog read_movielens_100k(const std::filesystem::path& dir, const ReadOptions& opt = {});

// Generic format: events file (.csv or .jsonl), item catalog (.csv or .jsonl), optional
// user table. See README "Your own data".
struct GenericPaths {
  std::filesystem::path events;
  std::filesystem::path items;
  std::filesystem::path users;  // empty = none
  std::string name = "custom";
  // The domain's nouns: "song" or "song,songs" (plural = noun + "s" when not given), and
  // the category attribute (must be an item attribute). Empty: "item", default_category.
  std::string item_noun;
  std::string category;
};
BehaviorLog read_generic(const GenericPaths& paths, const ReadOptions& opt = {});

// The catalog (items, users, domain, like threshold; no events) as one JSON document: a
// saved model's feature vocabulary. catalog_from_json throws Error(Parse) naming `where`.
std::string catalog_to_json(const BehaviorLog& log);
BehaviorLog catalog_from_json(std::string_view text, const std::string& where);

// Text helpers shared by the readers.
std::string latin1_to_utf8(std::string_view latin1);
// Replaces invalid UTF-8 sequences by U+FFFD; returns how many were replaced.
std::size_t sanitize_utf8(std::string& text);

// Where a named dataset lives: `explicit_dir` if given, else $LIBER_DATA_DIR/<name>
// or $LIBER_DATA_DIR itself when it holds the files, else the download cache (downloading
// the official GroupLens archive, checksum-verified). Throws ErrorKind::Network with the
// manual steps when the download is impossible.
std::filesystem::path locate_dataset(const std::string& name,
                                     const std::filesystem::path& explicit_dir);

// Loads "ml-1m" or "ml-100k" from the located directory.
BehaviorLog load_dataset(const std::string& name, const std::filesystem::path& dir,
                         const ReadOptions& opt = {});

}  // namespace liber
