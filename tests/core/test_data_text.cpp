// Text helpers under the readers: encodings, number/date parsing, the CSV record reader.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "liber/data.h"
#include "liber/data/text_io.h"

namespace {

using liber::data::CsvReader;

TEST(DataText, Latin1ToUtf8) {
  EXPECT_EQ(liber::latin1_to_utf8("plain"), "plain");
  EXPECT_EQ(liber::latin1_to_utf8("Caf\xE9"), "Caf\xC3\xA9");
  EXPECT_EQ(liber::latin1_to_utf8("\xFF\x80"), "\xC3\xBF\xC2\x80");
  EXPECT_EQ(liber::latin1_to_utf8(""), "");
}

TEST(DataText, SanitizeUtf8KeepsValidText) {
  std::string s = "Caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8E\xAC";
  const std::string before = s;
  EXPECT_EQ(liber::sanitize_utf8(s), 0u);
  EXPECT_EQ(s, before);
}

TEST(DataText, SanitizeUtf8ReplacesEachBadSequence) {
  const std::string fffd = "\xEF\xBF\xBD";
  std::string lone = "a\xE9z";  // latin-1 byte inside UTF-8 text
  EXPECT_EQ(liber::sanitize_utf8(lone), 1u);
  EXPECT_EQ(lone, "a" + fffd + "z");

  std::string truncated = "x\xE2\x82";  // 3-byte sequence cut at end of text
  EXPECT_EQ(liber::sanitize_utf8(truncated), 1u);
  EXPECT_EQ(truncated, "x" + fffd);

  std::string overlong = "\xC0\xAF";  // overlong '/': two invalid bytes
  EXPECT_EQ(liber::sanitize_utf8(overlong), 2u);
  EXPECT_EQ(overlong, fffd + fffd);

  std::string surrogate = "\xED\xA0\x80";  // U+D800 encoded: invalid
  EXPECT_GE(liber::sanitize_utf8(surrogate), 1u);
  EXPECT_TRUE(liber::data::is_valid_utf8(surrogate));

  std::string above = "\xF4\x90\x80\x80";  // > U+10FFFF
  EXPECT_GE(liber::sanitize_utf8(above), 1u);
  EXPECT_TRUE(liber::data::is_valid_utf8(above));
}

TEST(DataText, IsValidUtf8) {
  EXPECT_TRUE(liber::data::is_valid_utf8(""));
  EXPECT_TRUE(liber::data::is_valid_utf8("0123456789abcdefghijklmnop"));
  EXPECT_TRUE(liber::data::is_valid_utf8("0123456789abcdef\xC3\xA9ghijk"));
  EXPECT_FALSE(liber::data::is_valid_utf8("0123456789abcdef\xE9ghijk"));
  EXPECT_FALSE(liber::data::is_valid_utf8("\x80"));
}

TEST(DataText, ParseNumbers) {
  int64_t i;
  EXPECT_TRUE(liber::data::parse_int(std::string_view("978300760"), i));
  EXPECT_EQ(i, 978300760);
  EXPECT_TRUE(liber::data::parse_int(std::string_view(" 42 "), i));
  EXPECT_EQ(i, 42);
  EXPECT_FALSE(liber::data::parse_int(std::string_view("4x"), i));
  EXPECT_FALSE(liber::data::parse_int(std::string_view(""), i));
  EXPECT_FALSE(liber::data::parse_int(std::string_view("1.5"), i));
  uint64_t u;
  EXPECT_FALSE(liber::data::parse_int(std::string_view("-1"), u));
  float f;
  EXPECT_TRUE(liber::data::parse_float("3.5", f));
  EXPECT_FLOAT_EQ(f, 3.5f);
  EXPECT_FALSE(liber::data::parse_float("nan", f));
  EXPECT_FALSE(liber::data::parse_float("inf", f));
  EXPECT_FALSE(liber::data::parse_float("five", f));
}

TEST(DataText, ParseIso8601) {
  int64_t t = -1;
  EXPECT_TRUE(liber::data::parse_iso8601("1970-01-01T00:00:00Z", t));
  EXPECT_EQ(t, 0);
  EXPECT_TRUE(liber::data::parse_iso8601("2023-11-14T22:13:20Z", t));
  EXPECT_EQ(t, 1700000000);
  EXPECT_TRUE(liber::data::parse_iso8601("2023-11-14T22:13:20", t));
  EXPECT_EQ(t, 1700000000);
  EXPECT_TRUE(liber::data::parse_iso8601("2023-11-14 22:13:20.250", t));
  EXPECT_EQ(t, 1700000000);
  EXPECT_TRUE(liber::data::parse_iso8601("2023-11-15T00:13:20+02:00", t));
  EXPECT_EQ(t, 1700000000);
  EXPECT_TRUE(liber::data::parse_iso8601("2000-02-29", t));
  EXPECT_EQ(t, 951782400);
  EXPECT_TRUE(liber::data::parse_iso8601("1969-12-31T23:59:59Z", t));
  EXPECT_EQ(t, -1);
  EXPECT_FALSE(liber::data::parse_iso8601("2001-02-29", t));
  EXPECT_FALSE(liber::data::parse_iso8601("2023-13-01", t));
  EXPECT_FALSE(liber::data::parse_iso8601("2023-11-14T25:00:00", t));
  EXPECT_FALSE(liber::data::parse_iso8601("2023-11-14T22:13:20 garbage", t));
  EXPECT_FALSE(liber::data::parse_iso8601("yesterday", t));
}

TEST(DataText, YearFromTitle) {
  EXPECT_EQ(liber::data::year_from_title("Toy Story (1995)"), 1995);
  EXPECT_EQ(liber::data::year_from_title("Heidi Fleiss: Hollywood Madam (1995) "), 1995);
  EXPECT_EQ(liber::data::year_from_title("Land Before Time III (1995) (V)"), 1995);
  EXPECT_EQ(liber::data::year_from_title("City of Lost Children, The (Cité des enfants "
                                         "perdus, La) (1995)"),
            1995);
  EXPECT_EQ(liber::data::year_from_title("unknown"), 0);
  EXPECT_EQ(liber::data::year_from_title("(19x5)"), 0);
}

TEST(DataText, SplitInto) {
  std::array<std::string_view, 4> f;
  EXPECT_EQ(liber::data::split_into("1::2::3::4", "::", f), 4u);
  EXPECT_EQ(f[0], "1");
  EXPECT_EQ(f[3], "4");
  EXPECT_EQ(liber::data::split_into("1::2", "::", f), 2u);
  EXPECT_EQ(liber::data::split_into("1::2::3::4::5::6", "::", f), 6u);
  EXPECT_EQ(liber::data::split_into("", "::", f), 1u);
}

TEST(DataText, WithCommasAndExcerpt) {
  EXPECT_EQ(liber::data::with_commas(0), "0");
  EXPECT_EQ(liber::data::with_commas(999), "999");
  EXPECT_EQ(liber::data::with_commas(487650), "487,650");
  EXPECT_EQ(liber::data::with_commas(1000209), "1,000,209");
  EXPECT_EQ(liber::data::excerpt("a\tb"), "\"a\\tb\"");
  EXPECT_EQ(liber::data::excerpt("x\xE9y"), "\"x\\xE9y\"");  // messages stay valid UTF-8
  EXPECT_EQ(liber::data::excerpt("abcdef", 3), "\"abc...\"");
}

std::vector<std::vector<std::string>> read_all_csv(std::string_view text,
                                                   std::vector<std::string>* errors = nullptr,
                                                   std::vector<std::size_t>* lines = nullptr) {
  CsvReader reader(text);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> fields;
  std::string error;
  while (reader.next(fields, error)) {
    if (!error.empty()) {
      if (errors) errors->push_back(error);
      continue;
    }
    rows.push_back(fields);
    if (lines) lines->push_back(reader.line());
  }
  return rows;
}

TEST(DataText, CsvQuotingRules) {
  std::vector<std::size_t> lines;
  auto rows = read_all_csv(
      "a,b,c\r\n"
      "1,\"x, y\",\"say \"\"hi\"\"\"\n"
      "\n"
      "2,\"multi\nline\",\n"
      "3,,\"\"\n"
      "4, spaced ,last",
      nullptr, &lines);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"1", "x, y", "say \"hi\""}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"2", "multi\nline", ""}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{"3", "", ""}));
  EXPECT_EQ(rows[4], (std::vector<std::string>{"4", " spaced ", "last"}));
  // Line numbers count physical lines, including the blank one and the quoted newline.
  EXPECT_EQ(lines, (std::vector<std::size_t>{1, 2, 4, 6, 7}));
}

TEST(DataText, CsvMalformedQuotingIsReportedAndRecovers) {
  std::vector<std::string> errors;
  auto rows = read_all_csv("a,b\n\"x\"y,2\nok,3\n", &errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("expected ',' or end of line"), std::string::npos);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"ok", "3"}));

  errors.clear();
  rows = read_all_csv("a,b\n\"never closed,2\nok,3\n", &errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("closing '\"'"), std::string::npos);
  // The reader resumes on the next physical line instead of eating the file.
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"ok", "3"}));
}

}  // namespace
