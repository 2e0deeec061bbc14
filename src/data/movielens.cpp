// MovieLens-1M and MovieLens-100K readers (formats as documented in each release's README).
// Their text files are latin-1 by definition and are converted to UTF-8 on read.
#include <array>
#include <charconv>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "liber/data.h"
#include "liber/data/collect.h"
#include "liber/data/text_io.h"
#include "liber/error.h"

namespace liber {
namespace {

namespace fs = std::filesystem;
using data::BadLines;
using data::excerpt;

// MovieLens text is latin-1. A copy that someone already re-encoded as UTF-8 is left alone
// (latin-1 accents essentially never form valid UTF-8), so it is not double-encoded.
std::string read_latin1_file(const fs::path& path) {
  std::string raw = data::read_text_file(path);
  if (data::is_valid_utf8(raw)) return raw;
  return latin1_to_utf8(raw);
}

void require_nonempty(std::string_view text, const fs::path& path, std::string_view format) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("{} is empty; expected lines of {}", path.string(), format));
}

// Ids are numbers in MovieLens; keying them by their canonical decimal text makes "007"
// and "7" the same entity.
struct IdText {
  char buf[24];
  std::string_view view;
  explicit IdText(uint64_t v) {
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    view = std::string_view(buf, static_cast<std::size_t>(r.ptr - buf));
  }
};

bool parse_id(std::string_view field, uint64_t& id) { return data::parse_int(field, id); }

std::string expected_id(std::string_view name, std::string_view found) {
  return fmt::format("expected a non-negative integer {}, found {}", name, excerpt(found));
}

void check_dir(const fs::path& dir, std::string_view dataset) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(ErrorKind::Io,
                fmt::format("{} directory {} does not exist", dataset, dir.string()));
}

// Reads a `sep`-separated "UserID SEP ItemID SEP Rating SEP Timestamp" file into log.events.
void read_ratings(const fs::path& path, std::string_view sep, std::string_view format,
                  BehaviorLog& log, const ReadOptions& opt) {
  const std::string text = data::read_text_file(path);
  require_nonempty(text, path, format);
  BadLines bad(path.string(), opt, log.report);
  data::EventCollector events(log, opt, path.string(), /*user_table=*/true);
  log.events.reserve(text.size() / 24);  // ~24 bytes per ML-1M line
  data::Lines lines(text);
  std::string_view line;
  std::array<std::string_view, 4> f;
  while (lines.next(line)) {
    if (data::is_blank(line)) continue;
    ++log.report.lines;
    const std::size_t no = lines.number();
    const std::size_t n = data::split_into(line, sep, f);
    if (n != 4) {
      bad(no, fmt::format("expected 4 fields {}, found {} in {}", format, n, excerpt(line)));
      continue;
    }
    uint64_t user, item;
    float rating;
    int64_t ts;
    if (!parse_id(f[0], user)) {
      bad(no, expected_id("UserID", f[0]));
      continue;
    }
    if (!parse_id(f[1], item)) {
      bad(no, expected_id("MovieID", f[1]));
      continue;
    }
    if (!data::parse_float(f[2], rating)) {
      bad(no, fmt::format("expected a numeric Rating, found {}", excerpt(f[2])));
      continue;
    }
    if (!data::parse_int(f[3], ts)) {
      bad(no, fmt::format("expected an integer Timestamp (seconds since 1970), found {}",
                          excerpt(f[3])));
      continue;
    }
    if (ts < 0) {
      bad(no, fmt::format("expected a Timestamp >= 0 (seconds since 1970), found {}",
                          excerpt(f[3])));
      continue;
    }
    events.add(IdText(user).view, IdText(item).view, ts, rating, -1, no);
  }
  events.finish();
  if (log.events.empty())
    throw Error(ErrorKind::InvalidInput,
                fmt::format("{}: no usable events ({} lines, {} malformed, {} with unknown items)",
                            path.string(), log.report.lines, log.report.skipped_bad_lines,
                            log.report.unknown_item_events));
}

void start_catalog(ItemCatalog& items) {
  items.titles.assign(1, std::string());
  items.years.assign(1, 0);
}

std::string describe(const BehaviorLog& log, std::string_view source, std::size_t users,
                     const ReadOptions& opt) {
  std::string d = fmt::format("{} ({}): {} events, {} users, {} items", log.name, source,
                              data::with_commas(log.events.size()), data::with_commas(users),
                              data::with_commas(log.items.size() - 1));
  if (opt.max_users > 0)
    d += fmt::format(", limited to the first {} users", data::with_commas(opt.max_users));
  return d;
}

// ---------------------------------------------------------------------------- ML-1M

// What both movie readers start from: the bad-line policy, an empty catalog with a genres
// attribute, and the file's non-blank lines with their numbers.
struct MovieLines {
  MovieLines(std::string_view text, const fs::path& path, const ReadOptions& opt,
             ReadReport& report, ItemCatalog& items)
      : bad(path.string(), opt, report), lines(text) {
    start_catalog(items);
  }
  bool next(std::string_view& line) {
    while (lines.next(line))
      if (!data::is_blank(line)) return true;
    return false;
  }
  BadLines bad;
  Attribute genres = data::make_attribute("genres", /*multi=*/true);
  data::Lines lines;
};

// movies.dat: MovieID::Title::Genres. Split on the first and last "::" so a title holding
// "::" would still parse.
void read_ml1m_movies(const fs::path& path, ItemCatalog& items, const ReadOptions& opt,
                      ReadReport& report) {
  const std::string text = read_latin1_file(path);
  require_nonempty(text, path, "MovieID::Title::Genres");
  MovieLines in(text, path, opt, report, items);
  BadLines& bad = in.bad;
  std::vector<std::string> values;
  std::vector<std::string_view> parts;
  std::string_view line;
  while (in.next(line)) {
    const std::size_t no = in.lines.number();
    const std::size_t first = line.find("::");
    const std::size_t last = line.rfind("::");
    if (first == std::string_view::npos || first == last) {
      bad(no, fmt::format("expected 3 fields MovieID::Title::Genres, found {} in {}",
                          first == std::string_view::npos ? 1 : 2, excerpt(line)));
      continue;
    }
    uint64_t id;
    const std::string_view id_text = line.substr(0, first);
    if (!parse_id(id_text, id)) {
      bad(no, expected_id("MovieID", id_text));
      continue;
    }
    const IdText key(id);
    if (items.ids.find(key.view) != 0) {
      bad(no, fmt::format("expected each MovieID once, found {} again", key.view));
      continue;
    }
    const std::string_view title = data::trim(line.substr(first + 2, last - first - 2));
    items.ids.add(key.view);
    items.titles.emplace_back(title);
    items.years.push_back(data::year_from_title(title));
    data::split(line.substr(last + 2), '|', parts);
    values.clear();
    for (std::string_view g : parts) values.emplace_back(data::trim(g));
    in.genres.push_row(values);
  }
  if (items.ids.size() <= 1)
    throw Error(ErrorKind::InvalidInput, fmt::format("{}: no valid movie lines", path.string()));
  items.attributes.push_back(std::move(in.genres));
}

// The user tables of both releases: one id then four single-valued attributes, in a
// release-specific order and separator.
struct UserFormat {
  std::string_view separator;
  std::string_view format;    // shown in errors
  std::string_view id_name;   // "UserID" / "user id"
  std::array<const char*, 4> attributes;
};

// users.dat: UserID::Gender::Age::Occupation::Zip-code (Age and Occupation are codes,
// decoded for people by these labels, from the release's README).
const std::unordered_map<std::string, std::string> kMl1mAges = {
    {"1", "under 18"}, {"18", "18-24"}, {"25", "25-34"}, {"35", "35-44"},
    {"45", "45-49"}, {"50", "50-55"}, {"56", "56+"}};
const char* const kMl1mOccupations[] = {
    "other or not specified", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care", "executive/managerial",
    "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired",
    "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer"};
const std::unordered_map<std::string, std::string> kGenders = {{"F", "female"}, {"M", "male"}};

constexpr UserFormat kMl1mUsers{"::", "UserID::Gender::Age::Occupation::Zip-code", "UserID",
                                {"gender", "age", "occupation", "zip"}};
// u.user: user id|age|gender|occupation|zip code.
constexpr UserFormat kMl100kUsers{"|", "user id|age|gender|occupation|zip code", "user id",
                                  {"age", "gender", "occupation", "zip"}};

void read_users(const fs::path& path, const UserFormat& layout, UserTable& users,
                const ReadOptions& opt, ReadReport& report) {
  const std::string text = read_latin1_file(path);
  require_nonempty(text, path, layout.format);
  BadLines bad(path.string(), opt, report);
  std::array<Attribute, 4> attrs;
  for (std::size_t a = 0; a < attrs.size(); ++a)
    attrs[a] = data::make_attribute(layout.attributes[a], false);
  std::array<std::string_view, 5> f;
  data::Lines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (data::is_blank(line)) continue;
    const std::size_t no = lines.number();
    const std::size_t n = data::split_into(line, layout.separator, f);
    if (n != 5) {
      bad(no, fmt::format("expected 5 fields {}, found {} in {}", layout.format, n, excerpt(line)));
      continue;
    }
    uint64_t id;
    if (!parse_id(f[0], id)) {
      bad(no, expected_id(layout.id_name, f[0]));
      continue;
    }
    const IdText key(id);
    if (users.ids.find(key.view) != 0) {
      bad(no, fmt::format("expected each {} once, found {} again", layout.id_name, key.view));
      continue;
    }
    users.ids.add(key.view);
    for (std::size_t a = 0; a < attrs.size(); ++a) {
      const std::string value(data::trim(f[a + 1]));
      attrs[a].push_row(std::span<const std::string>(&value, 1));
    }
  }
  if (users.ids.size() <= 1)
    throw Error(ErrorKind::InvalidInput, fmt::format("{}: no valid user lines", path.string()));
  for (Attribute& a : attrs) {
    if (a.name == "gender") a.labels = kGenders;
    if (&layout == &kMl1mUsers && a.name == "age") a.labels = kMl1mAges;
    if (&layout == &kMl1mUsers && a.name == "occupation")
      for (std::size_t code = 0; code < std::size(kMl1mOccupations); ++code)
        a.labels[std::to_string(code)] = kMl1mOccupations[code];
    users.attributes.push_back(std::move(a));
  }
}

// ratings.dat, or the one ratings*.dat when a partial copy is all there is.
fs::path ml1m_ratings_file(const fs::path& dir) {
  fs::path full = dir / "ratings.dat";
  std::error_code ec;
  if (fs::exists(full, ec)) return full;
  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("ratings") && name.ends_with(".dat") && !entry.is_directory(ec))
      candidates.push_back(entry.path());
  }
  if (candidates.empty())
    throw Error(ErrorKind::Io,
                fmt::format("{}: no ratings.dat (nor any ratings*.dat) in this MovieLens-1M "
                            "directory",
                            dir.string()));
  if (candidates.size() > 1) {
    std::string names;
    for (const auto& c : candidates)
      names += (names.empty() ? "" : ", ") + c.filename().string();
    throw Error(ErrorKind::InvalidInput,
                fmt::format("{}: no ratings.dat and several ratings*.dat files ({}); keep one "
                            "or name the one to use ratings.dat",
                            dir.string(), names));
  }
  return candidates.front();
}

// ---------------------------------------------------------------------------- ML-100K

// u.genre: "name|index". The release always ships it; the fallback keeps a copy that
// lost it usable.
std::vector<std::string> read_ml100k_genres(const fs::path& path, const ReadOptions& opt,
                                            ReadReport& report) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    return {"unknown", "Action",    "Adventure", "Animation", "Children's", "Comedy", "Crime",
            "Documentary", "Drama", "Fantasy",   "Film-Noir", "Horror",     "Musical",
            "Mystery", "Romance",   "Sci-Fi",    "Thriller",  "War",        "Western"};
  const std::string text = read_latin1_file(path);
  require_nonempty(text, path, "name|index");
  BadLines bad(path.string(), opt, report);
  std::vector<std::string> names;
  std::array<std::string_view, 2> f;
  data::Lines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (data::is_blank(line)) continue;
    const std::size_t no = lines.number();
    if (data::split_into(line, "|", f) != 2) {
      bad(no, fmt::format("expected 2 fields name|index, found {}", excerpt(line)));
      continue;
    }
    std::size_t index;
    if (!data::parse_int(f[1], index) || index > 1000) {
      bad(no, fmt::format("expected a genre index 0..1000, found {}", excerpt(f[1])));
      continue;
    }
    if (names.size() <= index) names.resize(index + 1);
    names[index] = std::string(data::trim(f[0]));
  }
  return names;
}

// "01-Jan-1995" -> 1995, 0 when absent or malformed.
int year_from_release_date(std::string_view date) {
  date = data::trim(date);
  const std::size_t dash = date.rfind('-');
  int year = 0;
  if (dash == std::string_view::npos || date.size() - dash - 1 != 4 ||
      !data::parse_int(date.substr(dash + 1), year))
    return 0;
  return year;
}

// u.item: id|title|release date|video release date|IMDb URL|<one 0/1 flag per genre>.
void read_ml100k_items(const fs::path& path, const std::vector<std::string>& genre_names,
                       ItemCatalog& items, const ReadOptions& opt, ReadReport& report) {
  const std::string text = read_latin1_file(path);
  const std::size_t expected = 5 + genre_names.size();
  const std::string format = fmt::format(
      "movie id|title|release date|video release date|IMDb URL|{} genre flags",
      genre_names.size());
  require_nonempty(text, path, format);
  MovieLines in(text, path, opt, report, items);
  BadLines& bad = in.bad;
  std::vector<std::string_view> f;
  std::vector<std::string> values;
  std::string_view line;
  while (in.next(line)) {
    const std::size_t no = in.lines.number();
    data::split(line, '|', f);
    if (f.size() != expected) {
      bad(no, fmt::format("expected {} fields {}, found {} in {}", expected, format, f.size(),
                          excerpt(line)));
      continue;
    }
    uint64_t id;
    if (!parse_id(f[0], id)) {
      bad(no, expected_id("movie id", f[0]));
      continue;
    }
    const IdText key(id);
    if (items.ids.find(key.view) != 0) {
      bad(no, fmt::format("expected each movie id once, found {} again", key.view));
      continue;
    }
    values.clear();
    bool flags_ok = true;
    for (std::size_t g = 0; g < genre_names.size(); ++g) {
      const std::string_view flag = data::trim(f[5 + g]);
      if (flag == "1") {
        values.push_back(genre_names[g]);
      } else if (flag != "0") {
        bad(no, fmt::format("expected genre flag 0 or 1 in field {}, found {}", 6 + g,
                            excerpt(flag)));
        flags_ok = false;
        break;
      }
    }
    if (!flags_ok) continue;
    const std::string_view title = data::trim(f[1]);
    int year = year_from_release_date(f[2]);
    if (year == 0) year = data::year_from_title(title);
    items.ids.add(key.view);
    items.titles.emplace_back(title);
    items.years.push_back(year);
    in.genres.push_row(values);
  }
  if (items.ids.size() <= 1)
    throw Error(ErrorKind::InvalidInput, fmt::format("{}: no valid item lines", path.string()));
  items.attributes.push_back(std::move(in.genres));
}


}  // namespace

BehaviorLog read_movielens_1m(const fs::path& dir, const ReadOptions& opt) {
  check_dir(dir, "MovieLens-1M");
  BehaviorLog log;
  log.name = "ml-1m";
  log.domain = movie_domain();
  const fs::path ratings = ml1m_ratings_file(dir);
  read_ml1m_movies(dir / "movies.dat", log.items, opt, log.report);
  read_users(dir / "users.dat", kMl1mUsers, log.users, opt, log.report);
  read_ratings(ratings, "::", "UserID::MovieID::Rating::Timestamp", log, opt);
  const std::string file = ratings.filename().string();
  const std::size_t users = data::distinct_users(log);
  log.description = describe(log, file == "ratings.dat" ? file : "partial: " + file, users, opt);
  return log;
}

BehaviorLog read_movielens_100k(const fs::path& dir, const ReadOptions& opt) {
  check_dir(dir, "MovieLens-100K");
  BehaviorLog log;
  log.name = "ml-100k";
  log.domain = movie_domain();
  const std::vector<std::string> genre_names =
      read_ml100k_genres(dir / "u.genre", opt, log.report);
  read_ml100k_items(dir / "u.item", genre_names, log.items, opt, log.report);
  read_users(dir / "u.user", kMl100kUsers, log.users, opt, log.report);
  read_ratings(dir / "u.data", "\t", "user id<TAB>item id<TAB>rating<TAB>timestamp", log, opt);
  const std::size_t users = data::distinct_users(log);
  log.description = describe(log, "u.data", users, opt);
  return log;
}

BehaviorLog load_dataset(const std::string& name, const fs::path& dir, const ReadOptions& opt) {
  if (name == "ml-1m") return read_movielens_1m(dir, opt);
  if (name == "ml-100k") return read_movielens_100k(dir, opt);
  throw Error(ErrorKind::Config,
              fmt::format("unknown dataset \"{}\"; expected ml-1m or ml-100k", name));
}

}  // namespace liber
