// The in-memory partitioner: exact boundaries and reasons for each rule on hand-made streams.
#include <gtest/gtest.h>

#include "liber/error.h"
#include "liber/ubsp.h"
#include "test_ubsp_util.h"

namespace liber {
namespace {

using testing::ev;
using testing::sizes;
using testing::tiny_log;

struct Trace {
  std::vector<Partition> closed;
  std::vector<AddStatus> status;
  UserState st;
};

Trace run(const Partitioner& p, const std::vector<Event>& events) {
  Trace r;
  for (const Event& e : events) r.status.push_back(p.add(r.st, e, r.closed));
  return r;
}

PartitionRule rule_k(std::size_t k) {
  PartitionRule r;
  r.count = k;
  return r;
}

TEST(UbspPartitioner, CountClosesAtK) {
  Partitioner p(rule_k(3));
  std::vector<Event> es;
  for (int i = 0; i < 7; ++i) es.push_back(ev(1, 1 + i, 1000 + i * 10));
  Trace r = run(p, es);
  ASSERT_EQ(sizes(r.closed), (std::vector<std::size_t>{3, 3}));
  EXPECT_EQ(r.closed[0].seq, 0u);
  EXPECT_EQ(r.closed[1].seq, 1u);
  EXPECT_EQ(r.closed[0].reason, CloseReason::Count);
  EXPECT_EQ(r.closed[0].t_begin, 1000);
  EXPECT_EQ(r.closed[0].t_end, 1020);
  EXPECT_EQ(r.closed[1].t_begin, 1030);
  EXPECT_EQ(r.closed[1].events[0].item, 4u);
  ASSERT_EQ(r.st.cache.size(), 1u);
  EXPECT_EQ(r.st.cache[0].ts, 1060);
  EXPECT_EQ(r.st.next_seq, 2u);
  EXPECT_EQ(r.st.last_end, 1050);
}

TEST(UbspPartitioner, EqualTimestampsAreInOrder) {
  Partitioner p(rule_k(2));
  Trace r = run(p, {ev(1, 1, 100), ev(1, 2, 100), ev(1, 3, 100), ev(1, 4, 100)});
  EXPECT_EQ(sizes(r.closed), (std::vector<std::size_t>{2, 2}));
  for (auto s : r.status) EXPECT_EQ(s, AddStatus::Accepted);
}

TEST(UbspPartitioner, GapClosesBeforeTheNewEvent) {
  PartitionRule rule = rule_k(0);
  rule.max_gap = 100;
  Partitioner p(rule);
  Trace r = run(p, {ev(1, 1, 0 + 5000), ev(1, 2, 10 + 5000), ev(1, 3, 110 + 5000),
                  ev(1, 4, 211 + 5000), ev(1, 5, 250 + 5000)});
  ASSERT_EQ(sizes(r.closed), (std::vector<std::size_t>{3}));
  EXPECT_EQ(r.closed[0].reason, CloseReason::Gap);
  EXPECT_EQ(r.closed[0].t_begin, 5000);
  EXPECT_EQ(r.closed[0].t_end, 5110);
  ASSERT_EQ(r.st.cache.size(), 2u);  // the event after the gap starts the next partition
  EXPECT_EQ(r.st.cache[0].item, 4u);
}

TEST(UbspPartitioner, SpanClosesBeforeTheEventThatWouldExceedIt) {
  PartitionRule rule = rule_k(0);
  rule.max_span = 50;
  Partitioner p(rule);
  Trace r = run(p, {ev(1, 1, 1000), ev(1, 2, 1020), ev(1, 3, 1050), ev(1, 4, 1051),
                  ev(1, 5, 1060)});
  ASSERT_EQ(sizes(r.closed), (std::vector<std::size_t>{3}));  // 1050-1000 = 50 is allowed
  EXPECT_EQ(r.closed[0].reason, CloseReason::Span);
  EXPECT_EQ(r.closed[0].t_end, 1050);
  EXPECT_EQ(r.st.cache.size(), 2u);
}

TEST(UbspPartitioner, GapWithCountKeepsTheNewEventInTheCache) {
  PartitionRule rule = rule_k(2);
  rule.max_gap = 10;
  Partitioner p(rule);
  Trace r = run(p, {ev(1, 1, 100), ev(1, 2, 200)});
  ASSERT_EQ(sizes(r.closed), (std::vector<std::size_t>{1}));
  EXPECT_EQ(r.closed[0].reason, CloseReason::Gap);
}

TEST(UbspPartitioner, MaxSizeAlwaysBounds) {
  PartitionRule rule = rule_k(0);
  rule.max_gap = 1000000;
  rule.max_size = 4;
  Partitioner p(rule);
  std::vector<Event> es;
  for (int i = 0; i < 9; ++i) es.push_back(ev(1, 1 + i, 100 + i));
  Trace r = run(p, es);
  ASSERT_EQ(sizes(r.closed), (std::vector<std::size_t>{4, 4}));
  EXPECT_EQ(r.closed[1].reason, CloseReason::MaxSize);
  // Count wins the label when both fire.
  PartitionRule both = rule_k(4);
  both.max_size = 4;
  Trace r2 = run(Partitioner(both), es);
  EXPECT_EQ(r2.closed[0].reason, CloseReason::Count);
}

TEST(UbspPartitioner, ShiftCutsWhereTheInterestChanges) {
  // Items 1..10 genre A, 11..20 genre B.
  BehaviorLog log = tiny_log(20, 1, {});
  for (int i = 11; i <= 20; ++i) {
    auto& a = log.items.attributes[0];
    a.codes[a.offsets[static_cast<std::size_t>(i)]] = a.vocab.add("B");
  }
  PartitionRule rule = rule_k(0);
  rule.shift = true;
  rule.shift_window = 3;
  rule.shift_threshold = 0.5;
  rule.max_size = 100;
  Partitioner p(rule, &log.items);
  std::vector<Event> es;
  int64_t t = 1000;
  for (int i = 1; i <= 6; ++i) es.push_back(ev(1, i, t++));     // A A A A A A
  for (int i = 11; i <= 13; ++i) es.push_back(ev(1, i, t++));   // B B B
  Trace r = run(p, es);
  // JS(head, window) at 7 events = 0.19, at 8 = 0.46, at 9 = 1.0 > 0.5: the six A events
  // close, the three B events stay as the start of the next partition.
  ASSERT_EQ(sizes(r.closed), (std::vector<std::size_t>{6}));
  EXPECT_EQ(r.closed[0].reason, CloseReason::Shift);
  EXPECT_EQ(r.closed[0].t_end, 1005);
  ASSERT_EQ(r.st.cache.size(), 3u);
  EXPECT_EQ(r.st.cache[0].item, 11u);
  EXPECT_EQ(r.st.last_end, 1005);
  // A steady stream never shifts; max size bounds it.
  PartitionRule steady = rule;
  steady.max_size = 8;
  std::vector<Event> as;
  for (int i = 0; i < 17; ++i) as.push_back(ev(1, 1 + i % 10, 2000 + i));
  Trace r2 = run(Partitioner(steady, &log.items), as);
  ASSERT_EQ(sizes(r2.closed), (std::vector<std::size_t>{8, 8}));
  EXPECT_EQ(r2.closed[0].reason, CloseReason::MaxSize);
}

TEST(UbspPartitioner, ShiftNeedsTheAttribute) {
  PartitionRule rule;
  rule.shift = true;
  rule.shift_attribute = "brand";
  BehaviorLog log = tiny_log(3, 1, {});
  EXPECT_THROW(Partitioner(rule, &log.items), Error);
  rule.shift_attribute = "genres";
  rule.shift_window = 150;  // 2W > max_size
  EXPECT_THROW(Partitioner(rule, &log.items), Error);
}

TEST(UbspPartitioner, StrictOrderByDefault) {
  Partitioner p(rule_k(2));
  Trace r = run(p, {ev(1, 1, 100), ev(1, 2, 200), ev(1, 3, 150), ev(1, 4, 300), ev(1, 5, 250),
                  ev(1, 6, 199)});
  // 150 < t_end 200 of partition 0: late-closed; 250 < newest 300 with L = 0: window.
  EXPECT_EQ(r.status[2], AddStatus::LateClosed);
  EXPECT_EQ(r.status[4], AddStatus::LateWindow);
  EXPECT_EQ(r.status[5], AddStatus::LateClosed);
  ASSERT_EQ(r.closed.size(), 1u);
  EXPECT_EQ(r.st.cache.size(), 1u);
}

TEST(UbspPartitioner, LatenessWindowInsertsInTimestampOrder) {
  PartitionRule rule = rule_k(4);
  rule.lateness = 10;
  Partitioner p(rule);
  Trace r = run(p, {ev(1, 1, 100), ev(1, 2, 120), ev(1, 3, 112), ev(1, 4, 105)});
  // 112 and 105: 105 is 15 s older than the newest (120) > L: late-window.
  EXPECT_EQ(r.status[2], AddStatus::Accepted);
  EXPECT_EQ(r.status[3], AddStatus::LateWindow);
  ASSERT_EQ(r.st.cache.size(), 3u);
  EXPECT_EQ(r.st.cache[1].item, 3u);
  EXPECT_EQ(r.st.cache[2].ts, 120);
  // Fill to K: the partition holds the late event in order.
  r.status.push_back(p.add(r.st, ev(1, 5, 121), r.closed));
  ASSERT_EQ(r.closed.size(), 1u);
  EXPECT_EQ(r.closed[0].events[1].ts, 112);
  EXPECT_EQ(r.closed[0].t_end, 121);
  // Within L of the newest but older than the closed partition's end: never reordered.
  EXPECT_EQ(p.add(r.st, ev(1, 6, 115), r.closed), AddStatus::LateClosed);
  // Equal to t_end is fine.
  EXPECT_EQ(p.add(r.st, ev(1, 7, 121), r.closed), AddStatus::Accepted);
  // In-window duplicate of an event in the cache.
  EXPECT_EQ(p.add(r.st, ev(1, 8, 125), r.closed), AddStatus::Accepted);
  EXPECT_EQ(p.add(r.st, ev(1, 7, 121), r.closed), AddStatus::Duplicate);
  EXPECT_EQ(p.add(r.st, ev(1, 8, 125), r.closed), AddStatus::Duplicate);
}

TEST(UbspPartitioner, BadEventsAreRejected) {
  Partitioner p(rule_k(2));
  p.set_max_timestamp(2000000000);
  Trace r = run(p, {ev(1, 1, -5), ev(1, 2, 2000000001), ev(1, 0, 100), ev(0, 1, 100)});
  for (auto s : r.status) EXPECT_EQ(s, AddStatus::Bad);
  EXPECT_TRUE(r.st.cache.empty());
  EXPECT_EQ(r.st.newest_ts, kNoTime);
}

TEST(UbspPartitioner, FlushClosesTheCache) {
  Partitioner p(rule_k(5));
  Trace r = run(p, {ev(1, 1, 100), ev(1, 2, 200)});
  EXPECT_TRUE(p.flush(r.st, 1, r.closed));
  ASSERT_EQ(r.closed.size(), 1u);
  EXPECT_EQ(r.closed[0].reason, CloseReason::Flush);
  EXPECT_FALSE(p.flush(r.st, 1, r.closed));
}

TEST(UbspPartitioner, TimeOrderedIsStable) {
  std::vector<Event> es = {ev(1, 1, 30), ev(2, 2, 10), ev(1, 3, 10), ev(3, 4, 20)};
  auto o = time_ordered(es);
  EXPECT_EQ(o[0].item, 2u);
  EXPECT_EQ(o[1].item, 3u);
  EXPECT_EQ(o[2].item, 4u);
  EXPECT_EQ(o[3].item, 1u);
}

TEST(UbspPartitioner, RuleDescribeIsStable) {
  PartitionRule r;
  EXPECT_EQ(r.describe(), "count=50 span=0 gap=0 shift=off max=200 late=0");
}

}  // namespace
}  // namespace liber
