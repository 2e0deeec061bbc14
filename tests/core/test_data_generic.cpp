// The generic format reader (CSV and JSONL) and its defined bad-input behaviours.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

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
using liber::testing::write_file;

std::vector<std::string> values(const liber::Attribute& a, uint32_t row) {
  std::vector<std::string> out;
  for (uint32_t c : a.row(row)) out.push_back(a.vocab.key(c));
  return out;
}

constexpr const char* kItemsCsv =
    "item_id,title,year,genres,brand\n"
    "i1,Plain,1999,Comedy,acme\n"
    "i2,\"Heat, the movie\",1995,Action|Crime,\n"
    "i3,\"Say \"\"hi\"\"\",,Drama, acme \n";

liber::GenericPaths paths_in(const TempDir& dir, const char* events, const char* items,
                             const char* users = nullptr) {
  liber::GenericPaths p;
  p.events = dir / events;
  p.items = dir / items;
  if (users) p.users = dir / users;
  p.name = "shop";
  return p;
}

TEST(DataGeneric, ReadsCsvFixture) {
  TempDir dir;
  const auto info = liber::testing::write_generic_fixture(dir, 4, 8, 5);
  const auto log = liber::read_generic(paths_in(dir, "events.csv", "items.csv", "users.csv"));
  EXPECT_EQ(log.name, "shop");
  EXPECT_EQ(log.events.size(), info.events);
  EXPECT_EQ(log.users.size(), info.users + 1);
  EXPECT_EQ(log.items.size(), info.items + 1);
  EXPECT_EQ(log.report.lines, info.events);
  // Quoted title with a comma and escaped quotes.
  EXPECT_EQ(log.items.titles[log.items.ids.find("i5")], "Item 5, the \"sequel\"");
  EXPECT_EQ(log.items.years[log.items.ids.find("i7")], 1987);
  ASSERT_EQ(log.items.attributes.size(), 2u);
  EXPECT_EQ(log.items.attributes[0].name, "genres");
  EXPECT_TRUE(log.items.attributes[0].multi);  // item 3 has two genres
  EXPECT_EQ(log.items.attributes[1].name, "brand");
  EXPECT_FALSE(log.items.attributes[1].multi);
  ASSERT_EQ(log.users.attributes.size(), 2u);
  EXPECT_EQ(log.users.attributes[1].name, "segment");
  // Every 4th event has a label; the rest derive it later from the rating.
  const auto expected = liber::testing::fixture_events(4, 8, static_cast<int>(info.items), 5);
  for (std::size_t k = 0; k < expected.size(); ++k) {
    const auto& e = log.events[k];
    EXPECT_EQ(log.users.ids.key(e.user), "u" + std::to_string(expected[k].user));
    EXPECT_EQ(log.items.ids.key(e.item), "i" + std::to_string(expected[k].item));
    EXPECT_EQ(e.ts, expected[k].ts);
    EXPECT_EQ(e.rating, static_cast<float>(expected[k].rating));
    EXPECT_EQ(e.label, k % 4 == 0 ? (expected[k].rating >= 4 ? 1 : 0) : -1);
  }
  EXPECT_TRUE(contains(log.description, "shop (events.csv): 32 events, 4 users, 40 items"))
      << log.description;
}

TEST(DataGeneric, CsvAttributesMultiValuedAndMissing) {
  TempDir dir;
  write_file(dir / "items.csv", kItemsCsv);
  write_file(dir / "events.csv",
             "\xEF\xBB\xBFUser_ID,item_id,timestamp,label\n"  // BOM + any-case names
             "a,i1,2023-11-14T22:13:20Z,1\n"
             "a,i2,1700000100,0\n");
  const auto log = liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  const liber::Attribute* genres = log.items.attribute("genres");
  const liber::Attribute* brand = log.items.attribute("brand");
  ASSERT_NE(genres, nullptr);
  ASSERT_NE(brand, nullptr);
  EXPECT_EQ(values(*genres, log.items.ids.find("i2")),
            (std::vector<std::string>{"Action", "Crime"}));
  EXPECT_TRUE(values(*brand, log.items.ids.find("i2")).empty());  // empty = missing
  EXPECT_EQ(values(*brand, log.items.ids.find("i3")), (std::vector<std::string>{"acme"}));
  EXPECT_EQ(log.items.titles[log.items.ids.find("i3")], "Say \"hi\"");
  EXPECT_EQ(log.items.years[log.items.ids.find("i3")], 0);
  ASSERT_EQ(log.events.size(), 2u);
  EXPECT_EQ(log.events[0].ts, 1700000000);
  EXPECT_EQ(log.events[0].label, 1);
  EXPECT_TRUE(std::isnan(log.events[0].rating));
  EXPECT_EQ(log.events[1].label, 0);
  // No user table: users come from the events, with no attributes and no "unknown" count.
  EXPECT_EQ(log.users.size(), 2u);
  EXPECT_TRUE(log.users.attributes.empty());
  EXPECT_EQ(log.report.unknown_user_events, 0u);
}

// The domain's nouns: named by the caller, else "item" and the catalog's category column.
TEST(DataGeneric, DomainNounsFromTheCallerOrTheCatalog) {
  TempDir dir;
  write_file(dir / "items.csv", kItemsCsv);
  write_file(dir / "events.csv", "user_id,item_id,timestamp,rating\na,i1,1,5\n");
  auto p = paths_in(dir, "events.csv", "items.csv");
  const auto plain = liber::read_generic(p);
  EXPECT_EQ(plain.domain.item, "item");
  EXPECT_EQ(plain.domain.items, "items");
  EXPECT_EQ(plain.domain.category, "genres");
  EXPECT_EQ(plain.domain.category_singular(), "genre");
  p.item_noun = "song";
  p.category = "brand";
  const auto songs = liber::read_generic(p);
  EXPECT_EQ(songs.domain.item, "song");
  EXPECT_EQ(songs.domain.items, "songs");
  EXPECT_EQ(songs.domain.category, "brand");
  EXPECT_EQ(songs.domain.category_plural(), "brands");
  p.item_noun = "mouse,mice";
  p.category = "BRAND";  // column names match in any case
  const auto mice = liber::read_generic(p);
  EXPECT_EQ(mice.domain.items, "mice");
  EXPECT_EQ(mice.domain.category, "brand");
  p.category = "colour";
  const std::string e = error_of(ErrorKind::Config, [&] { liber::read_generic(p); });
  EXPECT_TRUE(contains(e, "category 'colour'") && contains(e, "items.csv") &&
              contains(e, "genres, brand"))
      << e;
  // Without a genres column: the first multi-valued attribute, else the first one.
  liber::ItemCatalog c;
  c.attributes.push_back({.name = "brand"});
  EXPECT_EQ(liber::default_category(c), "brand");
  c.attributes.push_back({.name = "tags", .multi = true});
  EXPECT_EQ(liber::default_category(c), "tags");
  EXPECT_EQ(liber::default_category(liber::ItemCatalog{}), "");
  liber::Domain d;
  for (auto [name, one, many] : {std::tuple{"categories", "category", "categories"},
                                 std::tuple{"genre", "genre", "genres"},
                                 std::tuple{"class", "class", "classes"},
                                 std::tuple{"key", "key", "keys"}}) {
    d.category = name;
    EXPECT_EQ(d.category_singular(), one) << name;
    EXPECT_EQ(d.category_plural(), many) << name;
  }
}

TEST(DataGeneric, ReadsJsonl) {
  TempDir dir;
  write_file(dir / "items.jsonl",
             "{\"item_id\": 1, \"title\": \"One\", \"year\": 2001, \"tags\": [\"a\", \"b\"]}\n"
             "\n"
             "{\"item_id\": \"2\", \"title\": \"Two|Pipe\", \"color\": \"red|blue\"}\n"
             "{\"item_id\": 3, \"title\": \"Three\", \"tags\": null, \"year\": \"1990\"}\n");
  write_file(dir / "users.jsonl",
             "{\"user_id\": 7, \"tier\": \"gold\"}\n"
             "{\"user_id\": 8}\n");
  write_file(dir / "events.jsonl",
             "{\"user_id\": 7, \"item_id\": 1, \"timestamp\": 1700000000, \"rating\": 4.5}\n"
             "{\"user_id\": 8, \"item_id\": \"2\", \"timestamp\": \"2023-11-14T22:13:21Z\", "
             "\"label\": true, \"extra\": {\"ignored\": 1}}\n"
             "{\"user_id\": 9, \"item_id\": 3, \"timestamp\": 1.7e9, \"label\": 0}\n");
  const auto log =
      liber::read_generic(paths_in(dir, "events.jsonl", "items.jsonl", "users.jsonl"));
  ASSERT_EQ(log.items.size(), 4u);
  EXPECT_EQ(log.items.years[log.items.ids.find("1")], 2001);
  EXPECT_EQ(log.items.years[log.items.ids.find("3")], 1990);
  EXPECT_EQ(log.items.titles[log.items.ids.find("2")], "Two|Pipe");
  const liber::Attribute* tags = log.items.attribute("tags");
  const liber::Attribute* color = log.items.attribute("color");
  ASSERT_NE(tags, nullptr);
  ASSERT_NE(color, nullptr);
  EXPECT_TRUE(tags->multi);
  EXPECT_EQ(values(*tags, log.items.ids.find("1")), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(values(*tags, log.items.ids.find("3")).empty());
  // "color" first appears on row 2: row 1 gets a missing value, rows stay aligned.
  EXPECT_EQ(color->rows(), log.items.size());
  EXPECT_TRUE(values(*color, log.items.ids.find("1")).empty());
  // In JSONL only arrays hold several values; '|' in a string is just a character.
  EXPECT_EQ(values(*color, log.items.ids.find("2")), (std::vector<std::string>{"red|blue"}));
  EXPECT_FALSE(color->multi);
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_FLOAT_EQ(log.events[0].rating, 4.5f);
  EXPECT_EQ(log.events[0].label, -1);
  EXPECT_EQ(log.events[1].ts, 1700000001);
  EXPECT_EQ(log.events[1].label, 1);
  EXPECT_EQ(log.events[2].ts, 1700000000);
  EXPECT_EQ(log.events[2].label, 0);
  // User 9 is not in the user table: added with missing attributes.
  EXPECT_EQ(log.report.unknown_user_events, 1u);
  EXPECT_EQ(log.users.size(), 4u);
  for (const auto& a : log.users.attributes) EXPECT_EQ(a.rows(), log.users.size());
  EXPECT_TRUE(values(*log.users.attribute("tier"), log.users.ids.find("9")).empty());
  EXPECT_EQ(values(*log.users.attribute("tier"), log.users.ids.find("7")),
            (std::vector<std::string>{"gold"}));
}

TEST(DataGeneric, MalformedCsvRowsThrowWithFileAndLine) {
  struct Case {
    const char* row;
    const char* expected;
    const char* found;
  } cases[] = {
      {"a,i1,100", "expected 4 comma-separated fields", "found 3"},
      {"a,i1,100,5,6", "expected 4 comma-separated fields", "found 5"},
      {",i1,100,5", "non-empty user_id", "empty"},
      {"a,,100,5", "non-empty item_id", "empty"},
      {"a,i1,tomorrow,5", "expected a timestamp", "\"tomorrow\""},
      {"a,i1,-5,5", "at or after 1970", "\"-5\""},
      {"a,i1,1969-12-31T00:00:00Z,5", "at or after 1970", "1969"},
      {"a,i1,100,great", "numeric rating", "\"great\""},
      {"a,i1,100,", "rating or a label", "neither"},
      {"a,\"i1,100,5", "closing '\"'", "end of file"},
  };
  for (const auto& c : cases) {
    TempDir dir;
    write_file(dir / "items.csv", kItemsCsv);
    write_file(dir / "events.csv",
               std::string("user_id,item_id,timestamp,rating\na,i2,50,4\n") + c.row + "\n");
    const auto msg = error_of(ErrorKind::Parse, [&] {
      liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
    });
    EXPECT_TRUE(contains(msg, (dir / "events.csv").string() + ":3:")) << msg;
    EXPECT_TRUE(contains(msg, c.expected)) << msg;
    EXPECT_TRUE(contains(msg, c.found)) << msg;
  }
}

TEST(DataGeneric, BadLabelAndBadYear) {
  TempDir dir;
  write_file(dir / "items.csv", kItemsCsv);
  write_file(dir / "events.csv", "user_id,item_id,timestamp,label\na,i1,1,2\n");
  auto msg = error_of(ErrorKind::Parse, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "events.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "label 0 or 1")) << msg;

  write_file(dir / "items.csv", "item_id,title,year\ni1,A,19x9\n");
  msg = error_of(ErrorKind::Parse, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "items.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "integer year")) << msg;
}

TEST(DataGeneric, MalformedJsonlRowsThrowWithFileAndLine) {
  const char* cases[][2] = {
      {"{\"user_id\": \"a\", \"item_id\": \"i1\"", "invalid JSON"},
      {"[1, 2, 3]", "expected a JSON object, found a JSON array"},
      {"{\"item_id\": \"i1\", \"timestamp\": 5, \"rating\": 3}", "value for \"user_id\""},
      {"{\"user_id\": \"a\", \"item_id\": \"i1\", \"timestamp\": 5}", "rating or a label"},
      {"{\"user_id\": {\"x\": 1}, \"item_id\": \"i1\", \"timestamp\": 5, \"rating\": 1}",
       "found a JSON object"},
      {"{\"user_id\": \"a\", \"item_id\": \"i1\", \"timestamp\": 5.5, \"rating\": 1}",
       "\"5.5\""},
  };
  for (const auto& c : cases) {
    TempDir dir;
    write_file(dir / "items.csv", kItemsCsv);
    write_file(dir / "events.jsonl",
               std::string("{\"user_id\": \"a\", \"item_id\": \"i2\", \"timestamp\": 1, "
                           "\"rating\": 5}\n") +
                   c[0] + "\n");
    const auto msg = error_of(ErrorKind::Parse, [&] {
      liber::read_generic(paths_in(dir, "events.jsonl", "items.csv"));
    });
    EXPECT_TRUE(contains(msg, "events.jsonl:2:")) << msg;
    EXPECT_TRUE(contains(msg, c[1])) << msg;
  }
}

TEST(DataGeneric, HeaderProblems) {
  TempDir dir;
  write_file(dir / "items.csv", kItemsCsv);
  write_file(dir / "events.csv", "user_id,item_id,rating\na,i1,5\n");
  auto msg = error_of(ErrorKind::Parse, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "events.csv:1:")) << msg;
  EXPECT_TRUE(contains(msg, "timestamp")) << msg;

  write_file(dir / "events.csv", "user_id,item_id,timestamp\na,i1,5\n");
  msg = error_of(ErrorKind::Parse, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "rating or a label")) << msg;

  write_file(dir / "events.csv", "user_id,item_id,timestamp,rating,rating\na,i1,5,1,1\n");
  msg = error_of(ErrorKind::Parse, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "twice")) << msg;

  write_file(dir / "events.csv", "user_id,item_id,timestamp,rating\n");
  msg = error_of(ErrorKind::InvalidInput, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "no data rows")) << msg;

  write_file(dir / "items.csv", "item_id,name\ni1,x\n");
  msg = error_of(ErrorKind::Parse, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "items.csv:1:")) << msg;
  EXPECT_TRUE(contains(msg, "title")) << msg;
}

TEST(DataGeneric, EmptyMissingAndWrongExtension) {
  TempDir dir;
  write_file(dir / "items.csv", kItemsCsv);
  write_file(dir / "events.csv", "");
  auto msg = error_of(ErrorKind::InvalidInput, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "events.csv")) << msg;
  EXPECT_TRUE(contains(msg, "empty")) << msg;

  msg = error_of(ErrorKind::Io, [&] {
    liber::read_generic(paths_in(dir, "missing.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "missing.csv")) << msg;

  // The user table is optional, but a named one must exist.
  write_file(dir / "events.csv", "user_id,item_id,timestamp,rating\na,i1,5,1\n");
  msg = error_of(ErrorKind::Io, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv", "users.csv"));
  });
  EXPECT_TRUE(contains(msg, "users.csv")) << msg;

  write_file(dir / "events.txt", "user_id,item_id,timestamp,rating\na,i1,5,1\n");
  msg = error_of(ErrorKind::Config, [&] {
    liber::read_generic(paths_in(dir, "events.txt", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, ".csv or .jsonl")) << msg;

  liber::GenericPaths no_items;
  no_items.events = dir / "events.csv";
  error_of(ErrorKind::Config, [&] { liber::read_generic(no_items); });
}

TEST(DataGeneric, SkipBadLinesUnknownItemsAndDuplicates) {
  TempDir dir;
  write_file(dir / "items.csv", kItemsCsv);
  write_file(dir / "users.csv", "user_id,country\na,fr\nb,de\n");
  write_file(dir / "events.csv",
             "user_id,item_id,timestamp,rating,comment\n"
             "a,i1,100,5,fine\n"
             "a,i9,101,5,unknown item\n"
             "b,i2,100,oops,bad rating\n"
             "a,i1,100,3,duplicate\n"
             "z,i3,102,4,unknown user\n"
             "b,i2,100,4,\"quoted, ok\"\n");
  liber::ReadOptions opt;
  opt.skip_bad_lines = true;
  const auto log =
      liber::read_generic(paths_in(dir, "events.csv", "items.csv", "users.csv"), opt);
  EXPECT_EQ(log.report.lines, 6u);
  EXPECT_EQ(log.report.skipped_bad_lines, 1u);
  EXPECT_EQ(log.report.unknown_item_events, 1u);
  EXPECT_EQ(log.report.duplicate_events, 1u);
  EXPECT_EQ(log.report.unknown_user_events, 1u);
  ASSERT_EQ(log.events.size(), 3u);  // a/i1, z/i3, b/i2 in file order
  EXPECT_EQ(log.users.ids.key(log.events[0].user), "a");
  EXPECT_EQ(log.users.ids.key(log.events[1].user), "z");
  EXPECT_EQ(log.users.ids.key(log.events[2].user), "b");
  const std::string f = (dir / "events.csv").string();
  EXPECT_TRUE(any_message_contains(log.report, f + ":3:"));  // unknown item
  EXPECT_TRUE(any_message_contains(log.report, f + ":4:"));  // bad rating
  EXPECT_TRUE(any_message_contains(log.report, f + ":5:"));  // duplicate
  EXPECT_TRUE(any_message_contains(log.report, f + ":6:"));  // unknown user
  EXPECT_TRUE(values(*log.users.attribute("country"), log.users.ids.find("z")).empty());
}

TEST(DataGeneric, InvalidUtf8IsReplacedCountedAndNoted) {
  TempDir dir;
  write_file(dir / "items.csv",
             "item_id,title,genres\n"
             "i1,Caf\xE9,Dr\xFF" "ama\n"  // two bad fields on line 2
             "i2,Fine \xC3\xA9,Comedy\n");
  write_file(dir / "events.jsonl",
             "{\"user_id\": \"b\xE9\", \"item_id\": \"i1\", \"timestamp\": 1, \"rating\": 5}\n");
  const auto log = liber::read_generic(paths_in(dir, "events.jsonl", "items.csv"));
  EXPECT_EQ(log.items.titles[log.items.ids.find("i1")], "Caf\xEF\xBF\xBD");
  EXPECT_EQ(log.items.titles[log.items.ids.find("i2")], "Fine \xC3\xA9");
  EXPECT_EQ(log.report.invalid_utf8_fields, 3u);  // 2 CSV fields + 1 JSONL line
  EXPECT_TRUE(any_message_contains(log.report, "items.csv:2:"));
  EXPECT_TRUE(any_message_contains(log.report, "events.jsonl:1:"));
  EXPECT_EQ(log.users.ids.key(log.events[0].user), "b\xEF\xBF\xBD");
}

TEST(DataGeneric, MaxUsersAndNoUsableEvents) {
  TempDir dir;
  write_file(dir / "items.csv", kItemsCsv);
  write_file(dir / "events.csv",
             "user_id,item_id,timestamp,rating\n"
             "c,i1,1,5\nb,i1,1,5\nc,i2,2,5\na,i3,3,5\nb,i2,2,5\n");
  liber::ReadOptions opt;
  opt.max_users = 2;
  auto log = liber::read_generic(paths_in(dir, "events.csv", "items.csv"), opt);
  ASSERT_EQ(log.events.size(), 4u);
  EXPECT_EQ(log.users.size(), 3u);  // c, b (+ id 0): a never entered
  EXPECT_EQ(log.users.ids.find("a"), 0u);

  // Every event dropped: an error that says why, not an empty dataset.
  write_file(dir / "events.csv", "user_id,item_id,timestamp,rating\na,x1,1,5\na,x2,2,5\n");
  const auto msg = error_of(ErrorKind::InvalidInput, [&] {
    liber::read_generic(paths_in(dir, "events.csv", "items.csv"));
  });
  EXPECT_TRUE(contains(msg, "no usable events")) << msg;
  EXPECT_TRUE(contains(msg, "2 with items not in the catalog")) << msg;
}

}  // namespace
