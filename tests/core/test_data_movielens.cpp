// MovieLens-1M / -100K readers on synthetic fixtures (tests/fixtures.h), every defined
// bad-input behaviour, and a smoke test on the real files when LIBER_SHARED_DATA is set.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "fixtures.h"
#include "helpers/expect.h"
#include "liber/data.h"
#include "liber/error.h"

namespace {

namespace fs = std::filesystem;
using liber::Error;
using liber::ErrorKind;
using liber::testing::TempDir;
using liber::testing::any_message_contains;
using liber::testing::contains;
using liber::testing::error_of;

// Runs `fn`, expecting liber::Error of `kind`; returns its message.
void append(const fs::path& file, const std::string& text) {
  liber::testing::write_file(file, liber::testing::read_file(file) + text);
}

// Every attribute has exactly one row per vocab id (row 0 included).
void expect_aligned(const liber::BehaviorLog& log) {
  for (const auto& a : log.users.attributes) EXPECT_EQ(a.rows(), log.users.size()) << a.name;
  for (const auto& a : log.items.attributes) EXPECT_EQ(a.rows(), log.items.size()) << a.name;
  EXPECT_EQ(log.items.titles.size(), log.items.size());
  EXPECT_EQ(log.items.years.size(), log.items.size());
}

// ------------------------------------------------------------------------------ ML-1M

TEST(DataMovieLens1m, ReadsFixture) {
  TempDir dir;
  const auto info = liber::testing::write_ml1m_fixture(dir, 5, 12, 7);
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.name, "ml-1m");
  EXPECT_EQ(log.events.size(), info.events);
  EXPECT_EQ(log.users.size(), info.users + 1);
  EXPECT_EQ(log.items.size(), info.items + 1);
  EXPECT_EQ(log.report.skipped_bad_lines + log.report.duplicate_events +
                log.report.unknown_item_events + log.report.unknown_user_events +
                log.report.invalid_utf8_fields,
            0u);
  expect_aligned(log);

  // Events in file order with ratings as written and labels left to derive.
  const auto expected = liber::testing::fixture_events(5, 12, static_cast<int>(info.items), 7);
  ASSERT_EQ(log.events.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& e = log.events[i];
    EXPECT_EQ(log.users.ids.key(e.user), std::to_string(expected[i].user));
    EXPECT_EQ(log.items.ids.key(e.item), std::to_string(expected[i].item));
    EXPECT_EQ(e.ts, expected[i].ts);
    EXPECT_EQ(e.rating, static_cast<float>(expected[i].rating));
    EXPECT_EQ(e.label, -1);
  }

  // Titles: latin-1 converted to UTF-8, year kept in the title and parsed out.
  const uint32_t cafe = log.items.ids.find(liber::testing::kLatin1ItemId);
  ASSERT_NE(cafe, 0u);
  EXPECT_EQ(log.items.titles[cafe], liber::testing::kLatin1TitleUtf8);
  EXPECT_EQ(log.items.years[cafe], 1996);
  const uint32_t m7 = log.items.ids.find("7");
  EXPECT_EQ(log.items.titles[m7], "Movie 7 (1987)");
  EXPECT_EQ(log.items.years[m7], 1987);
  EXPECT_EQ(log.items.years[0], 0);

  // Genres: multi-valued, as written.
  const liber::Attribute* genres = log.items.attribute("genres");
  ASSERT_NE(genres, nullptr);
  EXPECT_TRUE(genres->multi);
  for (int i = 1; i <= static_cast<int>(info.items); ++i) {
    const auto row = genres->row(log.items.ids.find(std::to_string(i)));
    const auto want = liber::testing::fixture_item_genres(i);
    ASSERT_EQ(row.size(), want.size()) << "item " << i;
    for (std::size_t k = 0; k < want.size(); ++k)
      EXPECT_EQ(genres->vocab.key(row[k]),
                liber::testing::fixture_genres()[static_cast<std::size_t>(want[k])]);
  }

  // Users: four single-valued attributes in file order.
  ASSERT_EQ(log.users.attributes.size(), 4u);
  EXPECT_EQ(log.users.attributes[0].name, "gender");
  EXPECT_EQ(log.users.attributes[1].name, "age");
  EXPECT_EQ(log.users.attributes[2].name, "occupation");
  EXPECT_EQ(log.users.attributes[3].name, "zip");
  const liber::Attribute* gender = log.users.attribute("gender");
  const uint32_t u1 = log.users.ids.find("1");
  ASSERT_EQ(gender->row(u1).size(), 1u);
  EXPECT_EQ(gender->vocab.key(gender->row(u1)[0]), "F");
  EXPECT_FALSE(gender->multi);
  const liber::Attribute* zip = log.users.attribute("zip");
  EXPECT_EQ(zip->vocab.key(zip->row(log.users.ids.find("2"))[0]), "10074");

  EXPECT_TRUE(contains(log.description, "ml-1m (ratings.dat)")) << log.description;
  EXPECT_TRUE(contains(log.description, "60 events")) << log.description;
  EXPECT_TRUE(contains(log.description, "5 users")) << log.description;
  EXPECT_FALSE(contains(log.description, "partial")) << log.description;
}

TEST(DataMovieLens1m, UsesTheSinglePartialRatingsFile) {
  TempDir dir;
  liber::testing::write_ml1m_fixture(dir, 3, 5, 1, "ratings_users_0001-0003.dat");
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), 15u);
  EXPECT_TRUE(contains(log.description, "(partial: ratings_users_0001-0003.dat)"))
      << log.description;
}

TEST(DataMovieLens1m, PrefersRatingsDatOverPartialFiles) {
  TempDir dir;
  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  liber::testing::write_file(dir / "ratings_users_0001-0001.dat", "1::1::5::978300000\n");
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), 15u);
  EXPECT_TRUE(contains(log.description, "(ratings.dat)")) << log.description;
}

TEST(DataMovieLens1m, SeveralPartialRatingsFilesIsAnError) {
  TempDir dir;
  liber::testing::write_ml1m_fixture(dir, 3, 5, 1, "ratings_a.dat");
  liber::testing::write_file(dir / "ratings_b.dat", "1::1::5::978300000\n");
  const auto msg = error_of(ErrorKind::InvalidInput, [&] { liber::read_movielens_1m(dir); });
  EXPECT_TRUE(contains(msg, "ratings_a.dat")) << msg;
  EXPECT_TRUE(contains(msg, "ratings_b.dat")) << msg;
}

TEST(DataMovieLens1m, MissingFilesNameTheFile) {
  TempDir dir;
  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  fs::remove(dir / "movies.dat");
  auto msg = error_of(ErrorKind::Io, [&] { liber::read_movielens_1m(dir); });
  EXPECT_TRUE(contains(msg, "movies.dat")) << msg;

  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  fs::remove(dir / "ratings.dat");
  msg = error_of(ErrorKind::Io, [&] { liber::read_movielens_1m(dir); });
  EXPECT_TRUE(contains(msg, "ratings.dat")) << msg;

  msg = error_of(ErrorKind::Io, [&] { liber::read_movielens_1m(dir / "nope"); });
  EXPECT_TRUE(contains(msg, "nope")) << msg;
}

TEST(DataMovieLens1m, EmptyFilesAreInvalidInput) {
  for (const char* file : {"movies.dat", "users.dat", "ratings.dat"}) {
    TempDir dir;
    liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
    liber::testing::write_file(dir / file, "\n\n");
    const auto msg = error_of(ErrorKind::InvalidInput, [&] { liber::read_movielens_1m(dir); });
    EXPECT_TRUE(contains(msg, file)) << msg;
    EXPECT_TRUE(contains(msg, "empty")) << msg;
  }
}

struct BadLine {
  const char* line;
  const char* expected;  // part of the message: what was expected
  const char* found;     // part of the message: what was found
};

TEST(DataMovieLens1m, MalformedRatingLinesThrowWithFileAndLine) {
  const BadLine cases[] = {
      {"1::2::5", "expected 4 fields", "found 3"},
      {"1::2::5::978300000::9", "expected 4 fields", "found 5"},
      {"x1::2::5::978300000", "integer UserID", "\"x1\""},
      {"1::two::5::978300000", "integer MovieID", "\"two\""},
      {"1::2::five::978300000", "numeric Rating", "\"five\""},
      {"1::2::5::soon", "integer Timestamp", "\"soon\""},
      {"1::2::5::-978300000", "Timestamp >= 0", "\"-978300000\""},
  };
  for (const auto& c : cases) {
    TempDir dir;
    const auto info = liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
    append(dir / "ratings.dat", std::string(c.line) + "\n");
    const std::string where = (dir / "ratings.dat").string() + ":" +
                              std::to_string(info.events + 1) + ":";
    const auto msg = error_of(ErrorKind::Parse, [&] { liber::read_movielens_1m(dir); });
    EXPECT_TRUE(contains(msg, where)) << msg;
    EXPECT_TRUE(contains(msg, c.expected)) << msg;
    EXPECT_TRUE(contains(msg, c.found)) << msg;
  }
}

TEST(DataMovieLens1m, MalformedCatalogAndUserLinesThrow) {
  TempDir dir;
  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  append(dir / "movies.dat", "no separators here\n");
  auto msg = error_of(ErrorKind::Parse, [&] { liber::read_movielens_1m(dir); });
  EXPECT_TRUE(contains(msg, "movies.dat:41:")) << msg;
  EXPECT_TRUE(contains(msg, "MovieID::Title::Genres")) << msg;

  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  append(dir / "users.dat", "4::M::25\n");
  msg = error_of(ErrorKind::Parse, [&] { liber::read_movielens_1m(dir); });
  EXPECT_TRUE(contains(msg, "users.dat:4:")) << msg;
  EXPECT_TRUE(contains(msg, "expected 5 fields")) << msg;

  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  append(dir / "movies.dat", "7::Again (1990)::Drama\n");
  msg = error_of(ErrorKind::Parse, [&] { liber::read_movielens_1m(dir); });
  EXPECT_TRUE(contains(msg, "movies.dat:41:")) << msg;
  EXPECT_TRUE(contains(msg, "once")) << msg;
}

TEST(DataMovieLens1m, SkipBadLinesCountsAndNotes) {
  TempDir dir;
  const auto info = liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  append(dir / "ratings.dat", "garbage\n1::2::5::-1\n");
  append(dir / "movies.dat", "x::Broken (2000)::Drama\n");
  liber::ReadOptions opt;
  opt.skip_bad_lines = true;
  const auto log = liber::read_movielens_1m(dir, opt);
  EXPECT_EQ(log.events.size(), info.events);
  EXPECT_EQ(log.report.skipped_bad_lines, 3u);
  EXPECT_EQ(log.report.lines, info.events + 2);
  EXPECT_EQ(log.items.size(), info.items + 1);
  const std::string ratings = (dir / "ratings.dat").string();
  EXPECT_TRUE(any_message_contains(log.report, ratings + ":" + std::to_string(info.events + 1) +
                                                   ":"));
  EXPECT_TRUE(any_message_contains(log.report, ratings + ":" + std::to_string(info.events + 2) +
                                                   ":"));
  EXPECT_TRUE(any_message_contains(log.report, "movies.dat:41:"));
}

TEST(DataMovieLens1m, UnknownItemsAreDropped) {
  TempDir dir;
  const auto info = liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  append(dir / "ratings.dat", "1::9999::5::978300000\n2::9998::4::978300001\n");
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), info.events);
  EXPECT_EQ(log.report.unknown_item_events, 2u);
  EXPECT_TRUE(any_message_contains(log.report, "\"9999\""));
  EXPECT_TRUE(any_message_contains(log.report, ":" + std::to_string(info.events + 1) + ":"));
}

TEST(DataMovieLens1m, UnknownUsersGetMissingAttributes) {
  TempDir dir;
  const auto info = liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  append(dir / "ratings.dat", "77::1::5::978300000\n77::2::3::978300001\n");
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), info.events + 2);
  EXPECT_EQ(log.report.unknown_user_events, 2u);
  EXPECT_EQ(log.users.size(), info.users + 2);
  const uint32_t u77 = log.users.ids.find("77");
  ASSERT_NE(u77, 0u);
  expect_aligned(log);
  for (const auto& a : log.users.attributes) EXPECT_TRUE(a.row(u77).empty()) << a.name;
  EXPECT_EQ(log.events.back().user, u77);
  EXPECT_TRUE(any_message_contains(log.report, "\"77\""));
}

TEST(DataMovieLens1m, DuplicateEventsKeepTheFirst) {
  TempDir dir;
  const auto info = liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  const std::string text = liber::testing::read_file(dir / "ratings.dat");
  const std::string first = text.substr(0, text.find('\n') + 1);
  // Same user, item and time again (even with another rating): a duplicate.
  std::string changed = first;
  changed[changed.find("::", changed.find("::") + 2) + 2] = '1';
  append(dir / "ratings.dat", first + changed);
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), info.events);
  EXPECT_EQ(log.report.duplicate_events, 2u);
  EXPECT_TRUE(any_message_contains(log.report, "duplicate of the event on line 1"));
}

TEST(DataMovieLens1m, MaxUsersKeepsFirstUsersByAppearance) {
  TempDir dir;
  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  liber::testing::write_file(dir / "ratings.dat",
                             "2::1::5::100\n3::1::4::100\n2::2::5::101\n1::1::3::100\n"
                             "3::2::2::101\n");
  liber::ReadOptions opt;
  opt.max_users = 2;
  const auto log = liber::read_movielens_1m(dir, opt);
  ASSERT_EQ(log.events.size(), 4u);
  for (const auto& e : log.events) EXPECT_NE(log.users.ids.key(e.user), "1");
  EXPECT_EQ(log.users.ids.key(log.events[0].user), "2");
  EXPECT_EQ(log.users.ids.key(log.events[1].user), "3");
  EXPECT_TRUE(contains(log.description, "first 2 users")) << log.description;
}

TEST(DataMovieLens1m, Utf8CopyIsNotDoubleEncoded) {
  TempDir dir;
  liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  const std::string latin1 = liber::testing::read_file(dir / "movies.dat");
  liber::testing::write_file(dir / "movies.dat", liber::latin1_to_utf8(latin1));
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.items.titles[log.items.ids.find(liber::testing::kLatin1ItemId)],
            liber::testing::kLatin1TitleUtf8);
}

TEST(DataMovieLens1m, CrlfLineEndings) {
  TempDir dir;
  const auto info = liber::testing::write_ml1m_fixture(dir, 3, 5, 1);
  for (const char* f : {"movies.dat", "users.dat", "ratings.dat"}) {
    std::string text = liber::testing::read_file(dir / f), crlf;
    for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    liber::testing::write_file(dir / f, crlf);
  }
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), info.events);
  EXPECT_EQ(log.items.titles[log.items.ids.find("7")], "Movie 7 (1987)");
  const liber::Attribute* genres = log.items.attribute("genres");
  for (uint32_t code : genres->row(log.items.ids.find("7")))
    EXPECT_EQ(genres->vocab.key(code).find('\r'), std::string::npos);
}

// ----------------------------------------------------------------------------- ML-100K

TEST(DataMovieLens100k, ReadsFixture) {
  TempDir dir;
  const auto info = liber::testing::write_ml100k_fixture(dir, 4, 10, 3);
  const auto log = liber::read_movielens_100k(dir);
  EXPECT_EQ(log.name, "ml-100k");
  EXPECT_EQ(log.events.size(), info.events);
  EXPECT_EQ(log.users.size(), info.users + 1);
  EXPECT_EQ(log.items.size(), info.items + 1);
  expect_aligned(log);
  const auto expected = liber::testing::fixture_events(4, 10, static_cast<int>(info.items), 3);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(log.items.ids.key(log.events[i].item), std::to_string(expected[i].item));
    EXPECT_EQ(log.events[i].ts, expected[i].ts);
    EXPECT_EQ(log.events[i].rating, static_cast<float>(expected[i].rating));
    EXPECT_EQ(log.events[i].label, -1);
  }
  const uint32_t cafe = log.items.ids.find(liber::testing::kLatin1ItemId);
  EXPECT_EQ(log.items.titles[cafe], liber::testing::kLatin1TitleUtf8);
  EXPECT_EQ(log.items.years[log.items.ids.find("7")], 1987);  // from the release date
  const liber::Attribute* genres = log.items.attribute("genres");
  ASSERT_NE(genres, nullptr);
  EXPECT_TRUE(genres->multi);
  for (int i = 1; i <= static_cast<int>(info.items); ++i) {
    const auto row = genres->row(log.items.ids.find(std::to_string(i)));
    const auto want = liber::testing::fixture_item_genres(i);
    ASSERT_EQ(row.size(), want.size());
    for (std::size_t k = 0; k < want.size(); ++k)
      EXPECT_EQ(genres->vocab.key(row[k]),
                liber::testing::fixture_genres()[static_cast<std::size_t>(want[k])]);
  }
  ASSERT_EQ(log.users.attributes.size(), 4u);
  EXPECT_EQ(log.users.attributes[0].name, "age");
  EXPECT_EQ(log.users.attributes[1].name, "gender");
  EXPECT_EQ(log.users.attributes[2].name, "occupation");
  EXPECT_EQ(log.users.attributes[3].name, "zip");
  const liber::Attribute* occ = log.users.attribute("occupation");
  EXPECT_EQ(occ->vocab.key(occ->row(log.users.ids.find("3"))[0]), "engineer");
  EXPECT_TRUE(contains(log.description, "ml-100k (u.data): 40 events, 4 users")) << log.description;
}

TEST(DataMovieLens100k, YearFallsBackToTitleAndGenreFileIsOptional) {
  TempDir dir;
  liber::testing::write_ml100k_fixture(dir, 2, 5, 3);
  append(dir / "u.item", "999|Undated (1977)|||http://x|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
  fs::remove(dir / "u.genre");
  const auto log = liber::read_movielens_100k(dir);
  const uint32_t id = log.items.ids.find("999");
  ASSERT_NE(id, 0u);
  EXPECT_EQ(log.items.years[id], 1977);
  const liber::Attribute* genres = log.items.attribute("genres");
  ASSERT_EQ(genres->row(id).size(), 1u);
  EXPECT_EQ(genres->vocab.key(genres->row(id)[0]), "Action");
}

TEST(DataMovieLens100k, MalformedLinesThrowWithFileAndLine) {
  TempDir dir;
  const auto info = liber::testing::write_ml100k_fixture(dir, 2, 5, 3);
  append(dir / "u.data", "1\t2\t3\n");
  auto msg = error_of(ErrorKind::Parse, [&] { liber::read_movielens_100k(dir); });
  EXPECT_TRUE(contains(msg, "u.data:" + std::to_string(info.events + 1) + ":")) << msg;
  EXPECT_TRUE(contains(msg, "expected 4 fields")) << msg;
  EXPECT_TRUE(contains(msg, "found 3")) << msg;

  liber::testing::write_ml100k_fixture(dir, 2, 5, 3);
  append(dir / "u.item", "998|Short|01-Jan-1990||url|0|1\n");
  msg = error_of(ErrorKind::Parse, [&] { liber::read_movielens_100k(dir); });
  EXPECT_TRUE(contains(msg, "u.item:41:")) << msg;
  EXPECT_TRUE(contains(msg, "expected 24 fields")) << msg;

  liber::testing::write_ml100k_fixture(dir, 2, 5, 3);
  append(dir / "u.item", "998|Odd (1990)|01-Jan-1990||url|0|2|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
  msg = error_of(ErrorKind::Parse, [&] { liber::read_movielens_100k(dir); });
  EXPECT_TRUE(contains(msg, "genre flag 0 or 1")) << msg;
  EXPECT_TRUE(contains(msg, "\"2\"")) << msg;

  liber::testing::write_ml100k_fixture(dir, 2, 5, 3);
  append(dir / "u.user", "3|old|M|x|1\n|1|F|y|2\n");
  liber::ReadOptions opt;
  opt.skip_bad_lines = true;
  const auto log = liber::read_movielens_100k(dir, opt);
  EXPECT_EQ(log.report.skipped_bad_lines, 1u);  // "old" is a categorical age: only the empty id
  EXPECT_TRUE(any_message_contains(log.report, "u.user:4:"));
}

TEST(DataMovieLens100k, EmptyAndMissingFiles) {
  TempDir dir;
  liber::testing::write_ml100k_fixture(dir, 2, 5, 3);
  liber::testing::write_file(dir / "u.data", "");
  auto msg = error_of(ErrorKind::InvalidInput, [&] { liber::read_movielens_100k(dir); });
  EXPECT_TRUE(contains(msg, "u.data")) << msg;
  fs::remove(dir / "u.user");
  msg = error_of(ErrorKind::Io, [&] { liber::read_movielens_100k(dir); });
  EXPECT_TRUE(contains(msg, "u.user")) << msg;
}

TEST(DataLoadDataset, DispatchesByName) {
  TempDir d1m, d100k;
  liber::testing::write_ml1m_fixture(d1m, 2, 5, 1);
  liber::testing::write_ml100k_fixture(d100k, 2, 5, 1);
  EXPECT_EQ(liber::load_dataset("ml-1m", d1m).name, "ml-1m");
  EXPECT_EQ(liber::load_dataset("ml-100k", d100k).name, "ml-100k");
  const auto msg = error_of(ErrorKind::Config, [&] { liber::load_dataset("ml-20m", d1m); });
  EXPECT_TRUE(contains(msg, "ml-20m")) << msg;
}

// A large fixture parses whole (its speed is bench/ubsp_bench's BM_ReadMovielens1m).
TEST(DataLoadDataset, HalfMillionLineFixtureParsesWhole) {
  TempDir dir;
  const auto info = liber::testing::write_ml1m_fixture(dir, 2000, 250, 11);  // 500k lines
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), info.events);
  expect_aligned(log);
}

// ------------------------------------------------------------------------ real data

// Smoke test on the real MovieLens files; runs only where LIBER_SHARED_DATA points at a
// folder holding ml-1m-partial/ and ml-100k/ (the files never enter the repository).
fs::path shared_data(const char* sub) {
  const char* root = std::getenv("LIBER_SHARED_DATA");
  if (root == nullptr || *root == '\0') return {};
  fs::path p = fs::path(root) / sub;
  return fs::is_directory(p) ? p : fs::path();
}

TEST(DataRealMovieLens, Ml1mPartial) {
  const fs::path dir = shared_data("ml-1m-partial");
  if (dir.empty()) GTEST_SKIP() << "set LIBER_SHARED_DATA to run on the real files";
  const auto log = liber::read_movielens_1m(dir);
  EXPECT_EQ(log.events.size(), 487650u);
  EXPECT_EQ(log.items.size(), 3883u + 1);
  EXPECT_EQ(log.users.size(), 6040u + 1);  // the whole users.dat
  EXPECT_EQ(log.report.unknown_item_events + log.report.duplicate_events +
                log.report.unknown_user_events,
            0u);
  EXPECT_TRUE(contains(log.description, "(partial: ratings_users_0001-2999.dat)"));
  EXPECT_TRUE(contains(log.description, "487,650 events, 2,999 users, 3,883 items"))
      << log.description;
  EXPECT_EQ(log.items.titles[log.items.ids.find("73")], "Mis\xC3\xA9rables, Les (1995)");
  EXPECT_EQ(log.items.years[log.items.ids.find("73")], 1995);
  expect_aligned(log);
}

TEST(DataRealMovieLens, Ml100k) {
  const fs::path dir = shared_data("ml-100k");
  if (dir.empty()) GTEST_SKIP() << "set LIBER_SHARED_DATA to run on the real files";
  const auto log = liber::read_movielens_100k(dir);
  EXPECT_EQ(log.events.size(), 100000u);
  EXPECT_EQ(log.users.size(), 943u + 1);
  EXPECT_EQ(log.items.size(), 1682u + 1);
  EXPECT_TRUE(contains(log.description, "100,000 events, 943 users, 1,682 items"))
      << log.description;
  EXPECT_EQ(log.items.titles[log.items.ids.find("543")], "Mis\xC3\xA9rables, Les (1995)");
  EXPECT_EQ(log.items.years[log.items.ids.find("1")], 1995);
  EXPECT_EQ(log.items.years[log.items.ids.find("267")], 0);  // "unknown", no date
  EXPECT_EQ(log.items.attribute("genres")->vocab.size(), 19u + 1);
  expect_aligned(log);
}

}  // namespace
