// decode_events: request bodies of events (JSON array or JSON lines) against a catalog.
#include <gtest/gtest.h>

#include <chrono>

#include "core/test_ubsp_util.h"
#include "liber/error.h"
#include "liber/serve.h"

namespace liber {
namespace {

using testing::tiny_log;

class DecodeEvents : public ::testing::Test {
 protected:
  BehaviorLog log = tiny_log(10, 3, {"A", "B"});
  DecodedEvents decode(std::string_view body, std::size_t max_events = 100) {
    return decode_events(body, log.items, log.users, max_events);
  }
};

TEST_F(DecodeEvents, ArrayAndJsonLinesGiveTheSameEvents) {
  const auto a = decode(R"([{"user":"u1","item":"i3","ts":100,"rating":4.5},
                            {"user":"u2","item":"i10","ts":200,"label":1}])");
  const auto l = decode("{\"user\":\"u1\",\"item\":\"i3\",\"ts\":100,\"rating\":4.5}\n\n"
                        "  \r\n{\"user\":\"u2\",\"item\":\"i10\",\"ts\":200,\"label\":true}\n");
  for (const auto* d : {&a, &l}) {
    ASSERT_EQ(d->events.size(), 2u);
    EXPECT_EQ(d->total, 2u);
    EXPECT_TRUE(d->bad.empty());
    EXPECT_EQ(d->events[0].user, log.users.ids.find("u1"));
    EXPECT_EQ(d->events[0].item, log.items.ids.find("i3"));
    EXPECT_EQ(d->events[0].ts, 100);
    EXPECT_FLOAT_EQ(d->events[0].rating, 4.5f);
    EXPECT_EQ(d->events[0].label, -1);
    EXPECT_EQ(d->events[1].item, log.items.ids.find("i10"));
    EXPECT_TRUE(std::isnan(d->events[1].rating));
    EXPECT_EQ(d->events[1].label, 1);
    EXPECT_EQ(d->position, (std::vector<std::size_t>{0, 1}));
  }
}

TEST_F(DecodeEvents, IntegerIdsAreTheirDecimalText) {
  log.users.ids.add("42");
  log.items.ids.add("7");
  const auto d = decode(R"([{"user":42,"item":7,"ts":5}])");
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].user, log.users.ids.find("42"));
  EXPECT_EQ(d.events[0].item, log.items.ids.find("7"));
}

TEST_F(DecodeEvents, EachWrongEventIsReportedWithItsIndexAndFieldAndTheRestKept) {
  const int64_t future = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count() + 3 * 86400;
  const std::string body = R"([
    {"user":"u1","item":"i1","ts":10},
    {"item":"i1","ts":10},
    {"user":"u9","item":"i1","ts":10},
    {"user":"u1","item":"i99","ts":10},
    {"user":"u1","item":"i1","ts":"10"},
    {"user":"u1","item":"i1","ts":10.5},
    {"user":"u1","item":"i1","ts":-1},
    {"user":"u1","item":"i1","ts":)" + std::to_string(future) + R"(},
    {"user":"u1","item":"i1","ts":11,"rating":"five"},
    {"user":"u1","item":"i1","ts":12,"label":2},
    [1,2],
    {"user":true,"item":"i1","ts":13},
    {"user":"u2","item":"i2","ts":20}
  ])";
  const auto d = decode(body);
  EXPECT_EQ(d.total, 13u);
  ASSERT_EQ(d.events.size(), 2u);
  EXPECT_EQ(d.position, (std::vector<std::size_t>{0, 12}));
  const std::vector<std::pair<std::size_t, std::string>> want{
      {1, "user"}, {2, "user"}, {3, "item"}, {4, "ts"}, {5, "ts"}, {6, "ts"},
      {7, "ts"},   {8, "rating"}, {9, "label"}, {10, ""}, {11, "user"}};
  ASSERT_EQ(d.bad.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(d.bad[i].index, want[i].first) << i;
    EXPECT_EQ(d.bad[i].field, want[i].second) << i;
    EXPECT_FALSE(d.bad[i].reason.empty()) << i;
  }
  EXPECT_EQ(d.bad[0].reason, "missing");
  EXPECT_NE(d.bad[1].reason.find("unknown user 'u9'"), std::string::npos);
  EXPECT_NE(d.bad[2].reason.find("unknown item 'i99'"), std::string::npos);
  EXPECT_NE(d.bad[4].reason.find("fraction"), std::string::npos);
  EXPECT_EQ(d.bad[5].reason, "before 1970");
  EXPECT_EQ(d.bad[6].reason, "more than a day in the future");
}

TEST_F(DecodeEvents, MalformedBodiesThrowNamingLineAndColumn) {
  auto message = [&](std::string_view body) {
    try {
      decode(body);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Parse);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("[{\"user\":\"u1\",\n \"item\": }]").find("line 2, column 10"), std::string::npos);
  EXPECT_NE(message("{\"user\":\"u1\",\"item\":\"i1\",\"ts\":1}\n{\"user\":\"u1\",\n").find("line 2"),
            std::string::npos);
  EXPECT_NE(message("{\"user\":\"u1\",\"item\":\"i1\",\"ts\":1}\n[1]\n").find("line 2: a JSON line must be an event object"),
            std::string::npos);
  EXPECT_NE(message("").find("empty body"), std::string::npos);
  EXPECT_NE(message("  \n ").find("empty body"), std::string::npos);
  EXPECT_NE(message("nonsense").find("line 1, column"), std::string::npos);
  // Well-formed JSON that nlohmann cannot hold (found by fuzz/events_fuzz.cpp).
  EXPECT_NE(message("3e+499").find("request body"), std::string::npos);
  EXPECT_NE(message("[{\"user\":\"u1\",\"item\":\"i1\",\"ts\":1e999}]").find("request body"),
            std::string::npos);
}

TEST_F(DecodeEvents, MoreEventsThanTheLimitThrowLimit) {
  std::string array = "[", lines;
  for (int i = 0; i < 6; ++i) {
    const std::string e = R"({"user":"u1","item":"i1","ts":)" + std::to_string(i) + "}";
    array += (i ? "," : "") + e;
    lines += e + "\n";
  }
  array += "]";
  EXPECT_EQ(decode(array, 6).events.size(), 6u);
  EXPECT_EQ(decode(lines, 6).events.size(), 6u);
  for (const std::string& body : {array, lines}) {
    try {
      decode(body, 5);
      ADD_FAILURE() << "no limit error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Limit);
      EXPECT_NE(std::string(e.what()).find("more than 5 events"), std::string::npos);
    }
  }
}

TEST(PartitionRuleText, ParseReadsWhatDescribeWrote) {
  PartitionRule plain;
  EXPECT_EQ(PartitionRule::parse(plain.describe()).describe(), plain.describe());
  PartitionRule r;
  r.count = 0;
  r.max_span = 86400;
  r.max_gap = 3600;
  r.shift = true;
  r.shift_attribute = "genres";
  r.shift_window = 12;
  r.shift_threshold = 0.42;
  r.max_size = 150;
  r.lateness = 30;
  const PartitionRule back = PartitionRule::parse(r.describe());
  EXPECT_EQ(back.describe(), r.describe());
  EXPECT_EQ(back.max_gap, 3600);
  EXPECT_EQ(back.shift_window, 12u);
  EXPECT_DOUBLE_EQ(back.shift_threshold, 0.42);
  EXPECT_THROW(PartitionRule::parse("count=50 span=0"), Error);
  EXPECT_THROW(PartitionRule::parse("count=x span=0 gap=0 shift=off max=200 late=0"), Error);
  EXPECT_THROW(PartitionRule::parse("count=50 span=0 gap=0 shift=off max=200 late=0 extra=1"), Error);
}

}  // namespace
}  // namespace liber
