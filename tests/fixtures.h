// Small synthetic datasets for tests, written in the MovieLens-1M, MovieLens-100K and
// generic formats. Content depends only on the arguments (own PRNG, no <random>
// distributions, whose output differs between standard libraries), so expected values are
// stable everywhere. Real MovieLens data never goes into the repository.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace liber::testing {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it on scope exit.
class TempDir {
 public:
  explicit TempDir(std::string_view tag = "liber-test") {
    static std::atomic<unsigned> counter{0};
    const auto base = fs::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
      path_ = base / (std::string(tag) + "-" + std::to_string(::getpid()) + "-" +
                      std::to_string(counter++));
      std::error_code ec;
      if (fs::create_directory(path_, ec)) return;
    }
    throw std::runtime_error("cannot create a temporary directory in " + base.string());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  operator const fs::path&() const { return path_; }  // NOLINT: convenient in calls
  fs::path operator/(std::string_view name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Writes bytes exactly as given (no newline translation, any encoding).
inline void write_file(const fs::path& path, std::string_view content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// splitmix64: tiny, fast, and identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform-enough integer in [0, n).
  uint64_t below(uint64_t n) { return next() % n; }

 private:
  uint64_t state_;
};

// What a fixture holds, for assertions.
struct FixtureInfo {
  std::size_t users = 0;   // users in the user table (all of them have events)
  std::size_t items = 0;   // items in the catalog
  std::size_t events = 0;  // event lines written (no duplicates, all items known)
};

// The movie whose title carries a latin-1 byte (0xE9, 'é') in the MovieLens fixtures, and
// that title as the readers must return it (UTF-8).
inline constexpr std::string_view kLatin1ItemId = "3";
inline constexpr std::string_view kLatin1TitleUtf8 = "Caf\xC3\xA9 Society 3 (1996)";

inline const std::vector<std::string>& fixture_genres() {
  static const std::vector<std::string> g = {
      "unknown", "Action",  "Adventure", "Animation", "Children's", "Comedy",   "Crime",
      "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",     "Musical",  "Mystery",
      "Romance", "Sci-Fi",  "Thriller",  "War",       "Western"};
  return g;
}

// Genres of fixture item i (1-based): one or two, never "unknown".
inline std::vector<int> fixture_item_genres(int i) {
  std::vector<int> g = {1 + (i % 18)};
  if (i % 3 == 0) g.push_back(1 + ((i * 5 + 3) % 18));
  if (g.size() == 2 && g[0] == g[1]) g.pop_back();
  std::sort(g.begin(), g.end());
  return g;
}

inline int fixture_item_year(int i) { return 1980 + (i % 20); }

// Title of fixture item i in latin-1 (item 3 holds the 0xE9 byte).
inline std::string fixture_title_latin1(int i) {
  if (i == 3) return "Caf\xE9 Society 3 (1996)";
  return "Movie " + std::to_string(i) + " (" + std::to_string(fixture_item_year(i)) + ")";
}

struct FixtureEvent {
  int user, item;
  int64_t ts;
  int rating;
};

// Events grouped by user (as MovieLens files are) with each user's timestamps out of order;
// every user rates `events_per_user` distinct items, so there are no duplicates.
inline std::vector<FixtureEvent> fixture_events(int n_users, int events_per_user, int n_items,
                                                uint64_t seed) {
  Rng rng(seed);
  std::vector<FixtureEvent> events;
  events.reserve(static_cast<std::size_t>(n_users) * static_cast<std::size_t>(events_per_user));
  std::vector<int> items(static_cast<std::size_t>(n_items));
  for (int u = 1; u <= n_users; ++u) {
    for (int i = 0; i < n_items; ++i) items[static_cast<std::size_t>(i)] = i + 1;
    for (int k = 0; k < events_per_user; ++k) {  // partial Fisher-Yates: distinct items
      const auto j = static_cast<std::size_t>(k) +
                     rng.below(static_cast<uint64_t>(n_items - k));
      std::swap(items[static_cast<std::size_t>(k)], items[j]);
      const int64_t ts = 978300000 + int64_t{u} * 100000 +
                         int64_t{(k * 7919) % events_per_user} * 60 +
                         static_cast<int64_t>(rng.below(60));
      events.push_back({u, items[static_cast<std::size_t>(k)], ts,
                        1 + static_cast<int>(rng.below(5))});
    }
  }
  return events;
}

inline int fixture_item_count(int events_per_user) { return std::max(40, events_per_user + 10); }

// MovieLens-1M layout: movies.dat, users.dat and `ratings_name` ("::"-separated, latin-1).
inline FixtureInfo write_ml1m_fixture(const fs::path& dir, int n_users, int events_per_user,
                                      uint64_t seed,
                                      std::string_view ratings_name = "ratings.dat") {
  const int n_items = fixture_item_count(events_per_user);
  const auto& genres = fixture_genres();
  std::string movies;
  for (int i = 1; i <= n_items; ++i) {
    movies += std::to_string(i) + "::" + fixture_title_latin1(i) + "::";
    const auto g = fixture_item_genres(i);
    for (std::size_t k = 0; k < g.size(); ++k)
      movies += (k ? "|" : "") + genres[static_cast<std::size_t>(g[k])];
    movies += "\n";
  }
  static const int kAges[] = {1, 18, 25, 35, 45, 50, 56};
  std::string users;
  for (int u = 1; u <= n_users; ++u)
    users += std::to_string(u) + "::" + (u % 2 ? "F" : "M") + "::" + std::to_string(kAges[u % 7]) +
             "::" + std::to_string(u % 21) + "::" + std::to_string(10000 + u * 37) + "\n";
  std::string ratings;
  const auto events = fixture_events(n_users, events_per_user, n_items, seed);
  for (const auto& e : events)
    ratings += std::to_string(e.user) + "::" + std::to_string(e.item) + "::" +
               std::to_string(e.rating) + "::" + std::to_string(e.ts) + "\n";
  write_file(dir / "movies.dat", movies);
  write_file(dir / "users.dat", users);
  write_file(dir / ratings_name, ratings);
  return {static_cast<std::size_t>(n_users), static_cast<std::size_t>(n_items), events.size()};
}

// MovieLens-100K layout: u.data (tab-separated), u.item, u.user, u.genre ('|', latin-1).
inline FixtureInfo write_ml100k_fixture(const fs::path& dir, int n_users, int events_per_user,
                                        uint64_t seed) {
  const int n_items = fixture_item_count(events_per_user);
  const auto& genres = fixture_genres();
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::string genre_file;
  for (std::size_t g = 0; g < genres.size(); ++g)
    genre_file += genres[g] + "|" + std::to_string(g) + "\n";
  genre_file += "\n";  // the release ends u.genre with a blank line
  std::string items;
  for (int i = 1; i <= n_items; ++i) {
    const int year = fixture_item_year(i);
    char date[16];
    std::snprintf(date, sizeof date, "%02d-%s-%d", 1 + i % 28, kMonths[i % 12], year);
    items += std::to_string(i) + "|" + fixture_title_latin1(i) + "|" + date +
             "||http://example.org/title?" + std::to_string(i);
    const auto g = fixture_item_genres(i);
    for (std::size_t k = 0; k < genres.size(); ++k)
      items += std::find(g.begin(), g.end(), static_cast<int>(k)) != g.end() ? "|1" : "|0";
    items += "\n";
  }
  std::string users;
  for (int u = 1; u <= n_users; ++u)
    users += std::to_string(u) + "|" + std::to_string(18 + u % 50) + "|" + (u % 2 ? "F" : "M") +
             "|" + (u % 3 ? "student" : "engineer") + "|" + std::to_string(20000 + u * 13) + "\n";
  std::string data;
  for (const auto& e : fixture_events(n_users, events_per_user, n_items, seed))
    data += std::to_string(e.user) + "\t" + std::to_string(e.item) + "\t" +
            std::to_string(e.rating) + "\t" + std::to_string(e.ts) + "\n";
  write_file(dir / "u.genre", genre_file);
  write_file(dir / "u.item", items);
  write_file(dir / "u.user", users);
  write_file(dir / "u.data", data);
  return {static_cast<std::size_t>(n_users), static_cast<std::size_t>(n_items),
          static_cast<std::size_t>(n_users) * static_cast<std::size_t>(events_per_user)};
}

// Generic format as CSV: events.csv (user_id,item_id,timestamp,rating,label,extra),
// items.csv (item_id,title,year,genres,brand; quoted titles with commas and quotes) and
// users.csv (user_id,gender,segment). Ids are text ("u7", "i12"); every 4th event carries
// an explicit label, the others leave it empty.
inline FixtureInfo write_generic_fixture(const fs::path& dir, int n_users, int events_per_user,
                                         uint64_t seed) {
  const int n_items = fixture_item_count(events_per_user);
  const auto& genres = fixture_genres();
  std::string items = "item_id,title,year,genres,brand\n";
  for (int i = 1; i <= n_items; ++i) {
    std::string title = "Item " + std::to_string(i);
    if (i % 5 == 0) title = "\"Item " + std::to_string(i) + ", the \"\"sequel\"\"\"";
    items += "i" + std::to_string(i) + "," + title + "," + std::to_string(fixture_item_year(i)) +
             ",";
    const auto g = fixture_item_genres(i);
    for (std::size_t k = 0; k < g.size(); ++k)
      items += (k ? "|" : "") + genres[static_cast<std::size_t>(g[k])];
    items += ",brand" + std::to_string(i % 4) + "\n";
  }
  std::string users = "user_id,gender,segment\n";
  for (int u = 1; u <= n_users; ++u)
    users += "u" + std::to_string(u) + "," + (u % 2 ? "F" : "M") + ",s" + std::to_string(u % 3) +
             "\n";
  std::string events = "user_id,item_id,timestamp,rating,label,extra\n";
  std::size_t k = 0;
  for (const auto& e : fixture_events(n_users, events_per_user, n_items, seed)) {
    const std::string label = k % 4 == 0 ? (e.rating >= 4 ? "1" : "0") : "";
    events += "u" + std::to_string(e.user) + ",i" + std::to_string(e.item) + "," +
              std::to_string(e.ts) + "," + std::to_string(e.rating) + "," + label + ",x" +
              std::to_string(k % 7) + "\n";
    ++k;
  }
  write_file(dir / "items.csv", items);
  write_file(dir / "users.csv", users);
  write_file(dir / "events.csv", events);
  return {static_cast<std::size_t>(n_users), static_cast<std::size_t>(n_items), k};
}

}  // namespace liber::testing
