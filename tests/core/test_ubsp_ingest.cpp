// The durable ingestor: store round trip, dedup, late records, identity, rerun, tail.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include "fixtures.h"
#include "liber/error.h"
#include "liber/ubsp.h"
#include "test_ubsp_util.h"

namespace liber {
namespace {

using testing::ev;
using testing::TempDir;
using testing::tiny_log;

std::vector<StoredPartition> all_partitions(Store& s) {
  std::vector<StoredPartition> out;
  for_each_partition(s, [&](const StoredPartition& p) { out.push_back(p); });
  return out;
}

std::vector<StoredPartition> all_partitions(const std::filesystem::path& path) {
  auto s = open_rocksdb_store(path, {.read_only = true});
  return all_partitions(*s);
}

// In-memory partitions converted to the stored form, sorted like the store (user key, seq).
std::vector<StoredPartition> expected(const BehaviorLog& log, const std::vector<Event>& stream,
                                      const PartitionRule& rule) {
  MemoryRun run = partition_in_memory(log, stream, rule);
  std::vector<StoredPartition> out;
  for (const Partition& p : run.partitions) {
    StoredPartition s{log.users.ids.key(p.user), p.seq, p.t_begin, p.t_end, p.reason, {}};
    for (const Event& e : p.events)
      s.events.push_back({log.items.ids.key(e.item), e.ts, e.rating, e.label});
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const StoredPartition& a, const StoredPartition& b) {
    if (a.user.size() != b.user.size()) return a.user.size() < b.user.size();
    if (a.user != b.user) return a.user < b.user;
    return a.seq < b.seq;
  });
  return out;
}

TEST(UbspIngest, StoreMatchesTheInMemoryPartitioner) {
  BehaviorLog log = tiny_log(30, 3, {"A", "B", "C"});
  std::vector<Event> stream;
  for (int i = 0; i < 40; ++i)
    stream.push_back(ev(1 + i % 3, 1 + (i * 7) % 30, 1000 + i * 10, 0.5f * (i % 11)));
  PartitionRule rule;
  rule.count = 4;
  TempDir dir("liber-ubsp");
  auto store = open_rocksdb_store(dir / "state");
  Ingestor ing(*store, log, rule, {.batch_events = 7});
  IngestStats st = ing.ingest(stream);
  EXPECT_EQ(st.new_events, 40u);
  EXPECT_EQ(st.closed[static_cast<int>(CloseReason::Count)], 9u);  // 13,13,14 -> 3,3,3
  EXPECT_EQ(st.users, 3u);
  EXPECT_EQ(st.batches, 6u);
  auto got = all_partitions(*store);
  EXPECT_EQ(got, expected(log, stream, rule));
  auto ps = read_partitions(*store, "u1");
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[2].seq, 2u);
  auto cache = read_cache(*store, "u3");
  ASSERT_TRUE(cache.has_value());
  EXPECT_EQ(cache->events.size(), 1u);
  EXPECT_EQ(cache->next_seq, 3u);
  EXPECT_EQ(cache->events[0].ts, 1000 + 38 * 10);
  EXPECT_EQ(partition_json(ps[0]).substr(0, 30), R"({"events":[{"item":"i1","ratin)");
}

TEST(UbspIngest, DuplicatesChangeNothing) {
  BehaviorLog log = tiny_log(10, 2, {});
  PartitionRule rule;
  rule.count = 3;
  std::vector<Event> stream = {ev(1, 1, 100), ev(1, 2, 110), ev(1, 1, 100), ev(2, 3, 100),
                               ev(1, 3, 120), ev(1, 2, 110), ev(1, 4, 130), ev(1, 1, 100)};
  TempDir dir("liber-ubsp");
  auto store = open_rocksdb_store(dir / "state");
  {
    Ingestor ing(*store, log, rule, {.batch_events = 3});
    IngestStats st = ing.ingest(stream);
    EXPECT_EQ(st.new_events, 5u);
    EXPECT_EQ(st.duplicates, 3u);  // across batches and across a closed partition
  }
  const auto before = all_partitions(*store);
  ASSERT_EQ(before.size(), 1u);
  const auto cache_before = read_cache(*store, "u1");
  // Redelivery of everything from another source (another progress stream).
  Ingestor again(*store, log, rule, {.batch_events = 2, .stream = "replay"});
  IngestStats st = again.ingest(stream);
  EXPECT_EQ(st.new_events, 0u);
  EXPECT_EQ(st.duplicates, stream.size());
  EXPECT_EQ(all_partitions(*store), before);
  EXPECT_EQ(read_cache(*store, "u1")->events.size(), cache_before->events.size());
}

TEST(UbspIngest, LateEventsAreRecordedWithTheirReason) {
  BehaviorLog log = tiny_log(10, 1, {});
  PartitionRule rule;
  rule.count = 2;
  rule.lateness = 5;
  std::vector<Event> stream = {ev(1, 1, 100), ev(1, 2, 200), ev(1, 3, 150), ev(1, 4, 300),
                               ev(1, 5, 290), ev(1, 6, 298), ev(1, 3, 150)};
  TempDir dir("liber-ubsp");
  auto store = open_rocksdb_store(dir / "state");
  Ingestor ing(*store, log, rule, {});
  IngestStats st = ing.ingest(stream);
  EXPECT_EQ(st.late_closed, 1u);  // 150 < t_end 200
  EXPECT_EQ(st.late_window, 1u);  // 290: 10 s behind 300 > L
  EXPECT_EQ(st.new_events, 4u);   // 298 is within L and inserted before 300
  EXPECT_EQ(st.duplicates, 1u);   // the late event again
  auto late = read_late(*store);
  ASSERT_EQ(late.size(), 2u);
  EXPECT_EQ(late[0].event.item, "i3");
  EXPECT_EQ(late[0].reason, AddStatus::LateClosed);
  EXPECT_EQ(late[1].event.ts, 290);
  EXPECT_EQ(late[1].reason, AddStatus::LateWindow);
  auto ps = read_partitions(*store, "u1");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[1].events[0].ts, 298);
  EXPECT_EQ(ps[1].events[1].ts, 300);
}

TEST(UbspIngest, BadTimestampsAreCountedNotStored) {
  BehaviorLog log = tiny_log(10, 1, {});
  TempDir dir("liber-ubsp");
  auto store = open_rocksdb_store(dir / "state");
  Ingestor ing(*store, log, PartitionRule{}, {.max_timestamp = 5000});
  IngestStats st = ing.ingest(std::vector<Event>{ev(1, 1, -1), ev(1, 2, 100), ev(1, 3, 5001)});
  EXPECT_EQ(st.bad, 2u);
  EXPECT_EQ(st.new_events, 1u);
  EXPECT_EQ(read_cache(*store, "u1")->events.size(), 1u);
}

TEST(UbspIngest, StoreOfAnotherDatasetOrRuleIsRefused) {
  BehaviorLog log = tiny_log(10, 1, {});
  TempDir dir("liber-ubsp");
  auto store = open_rocksdb_store(dir / "state");
  PartitionRule rule;
  { Ingestor ing(*store, log, rule, {}); }
  { Ingestor same(*store, log, rule, {}); }  // same identity: fine
  PartitionRule other = rule;
  other.count = 20;
  try {
    Ingestor ing(*store, log, other, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    const std::string m = e.what();
    EXPECT_NE(m.find((dir / "state").string()), std::string::npos) << m;
    EXPECT_NE(m.find("count=20"), std::string::npos) << m;
  }
  BehaviorLog renamed = tiny_log(10, 1, {});
  renamed.name = "other";
  EXPECT_THROW(Ingestor(*store, renamed, rule, {}), Error);
  BehaviorLog more_items = tiny_log(11, 1, {});
  EXPECT_THROW(Ingestor(*store, more_items, rule, {}), Error);
}

TEST(UbspIngest, RerunIsANoOpAndALongerFileOnlyAddsTheTail) {
  TempDir dir("liber-ubsp");
  const auto data = dir / "data";
  testing::write_ml1m_fixture(data, 12, 60, 7);
  // v1 = the first 500 lines; v2 = v1 + every line again 10^6 s later (a newer tail).
  const std::string full = testing::read_file(data / "ratings.dat");
  std::vector<std::string> lines;
  for (std::size_t a = 0, b; a < full.size(); a = b + 1) {
    b = full.find('\n', a);
    lines.push_back(full.substr(a, b - a));
  }
  std::string v1, tail;
  for (std::size_t i = 0; i < 500; ++i) v1 += lines[i] + "\n";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto p = lines[i].rfind("::");
    tail += lines[i].substr(0, p + 2) + std::to_string(std::stoll(lines[i].substr(p + 2)) + 1000000) +
            "\n";
  }
  testing::write_file(data / "ratings.dat", v1);
  PartitionRule rule;
  rule.count = 7;
  IngestOptions opt{.batch_events = 64};
  const auto store = dir / "state";
  BehaviorLog log1 = read_movielens_1m(data);
  IngestStats a = ingest_log(store, log1, rule, opt);
  EXPECT_EQ(a.new_events, 500u);
  IngestStats again = ingest_log(store, log1, rule, opt);
  EXPECT_EQ(again.new_events, 0u);
  EXPECT_EQ(again.skipped, 500u);
  EXPECT_EQ(again.events_seen, 0u);
  EXPECT_NE(again.summary().find("0 new"), std::string::npos);

  testing::write_file(data / "ratings.dat", v1 + tail);
  BehaviorLog log2 = read_movielens_1m(data);
  IngestStats b = ingest_log(store, log2, rule, opt);
  EXPECT_FALSE(b.prefix_changed);
  EXPECT_EQ(b.skipped, 500u);
  EXPECT_EQ(b.new_events, lines.size());
  EXPECT_EQ(b.duplicates, 0u);
  // Same partitions as one uninterrupted run over the longer file.
  ingest_log(dir / "fresh", log2, rule, opt);
  const auto got = all_partitions(store), want = all_partitions(dir / "fresh");
  EXPECT_GT(want.size(), 50u);
  EXPECT_EQ(got, want);
}

TEST(UbspIngest, ChangedPrefixReplaysThroughDedup) {
  TempDir dir("liber-ubsp");
  const auto data = dir / "data";
  testing::write_ml1m_fixture(data, 6, 40, 3);
  const std::string full = testing::read_file(data / "ratings.dat");
  // v1: every other line; v2: all lines (new events interleave in time with old ones).
  std::string v1;
  std::size_t n1 = 0, k = 0;
  for (std::size_t a = 0, b; a < full.size(); a = b + 1, ++k) {
    b = full.find('\n', a);
    if (k % 2 == 0) {
      v1 += full.substr(a, b - a + 1);
      ++n1;
    }
  }
  testing::write_file(data / "ratings.dat", v1);
  PartitionRule rule;
  rule.count = 5;
  ingest_log(dir / "state", read_movielens_1m(data), rule, {});
  const auto before = all_partitions(dir / "state");
  testing::write_file(data / "ratings.dat", full);
  IngestStats b = ingest_log(dir / "state", read_movielens_1m(data), rule, {});
  EXPECT_TRUE(b.prefix_changed);
  EXPECT_EQ(b.duplicates, n1);
  EXPECT_EQ(b.new_events + b.late_closed + b.late_window + b.duplicates, k);
  EXPECT_GT(b.late_closed, 0u);
  // Nothing already partitioned changed.
  const auto after = all_partitions(dir / "state");
  for (const auto& p : before)
    EXPECT_TRUE(std::find(after.begin(), after.end(), p) != after.end()) << p.user << " " << p.seq;
}

TEST(UbspIngest, FlushClosesEveryCache) {
  BehaviorLog log = tiny_log(10, 2, {});
  TempDir dir("liber-ubsp");
  auto store = open_rocksdb_store(dir / "state");
  PartitionRule rule;
  rule.count = 3;
  Ingestor ing(*store, log, rule, {});
  ing.ingest(std::vector<Event>{ev(1, 1, 100), ev(1, 2, 110), ev(2, 3, 120), ev(1, 4, 130),
                                ev(1, 5, 140)});
  IngestStats f = ing.flush_all();
  EXPECT_EQ(f.closed[static_cast<int>(CloseReason::Flush)], 2u);
  EXPECT_EQ(read_partitions(*store, "u1").size(), 2u);
  EXPECT_TRUE(read_cache(*store, "u1")->events.empty());
}

// The store is the only hand-off: what ingest stored reads back as the reader's dataset
// (catalog, user table with its labels, and every accepted event), the reader's log being
// the reference.
TEST(UbspCatalog, StoredDatasetReadsBackAsTheReadersLog) {
  TempDir dir("liber-ubsp");
  testing::write_ml1m_fixture(dir / "data", 7, 13, 5);
  const BehaviorLog log = read_movielens_1m(dir / "data");
  PartitionRule rule;
  rule.count = 5;
  const IngestStats st = ingest_log(dir / "state", log, rule, IngestOptions{});
  ASSERT_EQ(st.new_events, log.events.size());
  auto store = open_rocksdb_store(dir / "state", {.read_only = true});
  const BehaviorLog back = load_behavior_log(*store);
  EXPECT_EQ(back.name, log.name);
  EXPECT_EQ(back.description, log.description);
  EXPECT_EQ(back.like_threshold, log.like_threshold);
  EXPECT_EQ(back.domain.item, "movie");
  EXPECT_EQ(back.domain.items, log.domain.items);
  EXPECT_EQ(back.domain.item_synonyms, log.domain.item_synonyms);
  EXPECT_EQ(back.domain.category, "genres");
  EXPECT_EQ(back.domain.rating_unit, log.domain.rating_unit);
  EXPECT_EQ(back.domain.facets, log.domain.facets);
  ASSERT_EQ(back.items.size(), log.items.size());
  ASSERT_EQ(back.users.size(), log.users.size());
  for (uint32_t i = 0; i < log.items.size(); ++i) {
    EXPECT_EQ(back.items.ids.key(i), log.items.ids.key(i)) << i;
    EXPECT_EQ(back.items.titles[i], log.items.titles[i]) << i;
    EXPECT_EQ(back.items.years[i], log.items.years[i]) << i;
  }
  for (uint32_t u = 0; u < log.users.size(); ++u) EXPECT_EQ(back.users.ids.key(u), log.users.ids.key(u));
  auto same_attributes = [](const std::vector<Attribute>& a, const std::vector<Attribute>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].name, b[k].name);
      EXPECT_EQ(a[k].multi, b[k].multi);
      EXPECT_EQ(a[k].offsets, b[k].offsets) << a[k].name;
      EXPECT_EQ(a[k].codes, b[k].codes) << a[k].name;
      EXPECT_EQ(a[k].labels, b[k].labels) << a[k].name;
      ASSERT_EQ(a[k].vocab.size(), b[k].vocab.size()) << a[k].name;
      for (uint32_t c = 0; c < a[k].vocab.size(); ++c) EXPECT_EQ(a[k].vocab.key(c), b[k].vocab.key(c));
    }
  };
  same_attributes(back.items.attributes, log.items.attributes);
  same_attributes(back.users.attributes, log.users.attributes);
  EXPECT_EQ(back.users.attribute("occupation")->label("2"), "artist");  // ML-1M's code table
  // The same events (as a multiset: the store lists them by user, then time).
  auto key = [](const BehaviorLog& l) {
    std::vector<std::tuple<std::string, std::string, int64_t, float>> out;
    for (const Event& e : l.events)
      out.emplace_back(l.users.ids.key(e.user), l.items.ids.key(e.item), e.ts, e.rating);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(key(back), key(log));
  // Without events: the catalog alone (what learn needs).
  EXPECT_TRUE(load_behavior_log(*store, /*with_events=*/false).events.empty());
}

TEST(UbspCatalog, AStoreWithoutACatalogSaysHowToAddOne) {
  TempDir dir("liber-ubsp");
  { open_rocksdb_store(dir / "state"); }
  auto store = open_rocksdb_store(dir / "state", {.read_only = true});
  try {
    load_behavior_log(*store);
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidInput);
    EXPECT_NE(std::string(e.what()).find("liber ingest"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find((dir / "state").string()), std::string::npos) << e.what();
  }
}

// first:N, the KAR-style input: each user's first N accepted behaviors (across partitions
// and the open cache) as one partition, the events themselves the reference.
TEST(UbspPartitionSet, FirstNIsEachUsersFirstBehaviorsAndStaysOnceDerived) {
  TempDir dir("liber-ubsp");
  testing::write_ml1m_fixture(dir / "data", 4, 9, 3);  // 4 users x 9 events
  const BehaviorLog log = read_movielens_1m(dir / "data");
  PartitionRule rule;
  rule.count = 4;  // 2 partitions of 4 + 1 cached event per user
  ingest_log(dir / "state", log, rule, IngestOptions{});
  auto store = open_rocksdb_store(dir / "state");
  const PartitionSet first6 = PartitionSet::parse("first:6"), first9 = PartitionSet::parse("first:9");
  EXPECT_EQ(first6.name(), "first:6");
  EXPECT_EQ(PartitionSet::parse("ubsp").name(), "ubsp");
  EXPECT_THROW(PartitionSet::parse("first:0"), Error);
  EXPECT_THROW(PartitionSet::parse("last:3"), Error);
  EXPECT_EQ(derive_partition_set(*store, first6), 4u);
  EXPECT_EQ(derive_partition_set(*store, first6), 0u);  // once
  EXPECT_EQ(derive_partition_set(*store, first9), 4u);  // reaches into the cache
  EXPECT_EQ(derive_partition_set(*store, PartitionSet::parse("first:10")), 0u);  // nobody has 10
  for (const char* user : {"1", "2", "3", "4"}) {
    // The reference: the user's events from the log, in time order.
    std::vector<std::pair<int64_t, std::string>> events;
    for (const Event& e : log.events)
      if (log.users.ids.key(e.user) == user) events.emplace_back(e.ts, log.items.ids.key(e.item));
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const PartitionSet& set : {first6, first9}) {
      const auto parts = read_partitions_in(*store, set, user);
      ASSERT_EQ(parts.size(), 1u) << user;
      ASSERT_EQ(parts[0].events.size(), set.first) << user;
      EXPECT_EQ(parts[0].seq, 0u);
      for (std::size_t i = 0; i < set.first; ++i) EXPECT_EQ(parts[0].events[i].item, events[i].second);
      EXPECT_EQ(parts[0].t_begin, events.front().first);
      EXPECT_EQ(parts[0].t_end, events[set.first - 1].first);
    }
  }
  std::size_t n = 0;
  for_each_partition_in(*store, first6, [&](const StoredPartition&) { ++n; });
  EXPECT_EQ(n, 4u);
  n = 0;
  for_each_partition_in(*store, PartitionSet{}, [&](const StoredPartition&) { ++n; });
  EXPECT_EQ(n, 8u);  // "ubsp": the closed partitions
}

}  // namespace
}  // namespace liber
