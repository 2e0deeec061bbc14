// Partition content vectors and the controls: the content table against means computed here
// from the stored item text vectors, the controls' structure kept and knowledge dropped.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine_fixture.h"
#include "fixtures.h"
#include "helpers/expect.h"
#include "store_fixture.h"
#include "liber/error.h"
#include "liber/ubsp.h"
#include "liber/uif.h"

namespace liber {
namespace {

using testing::TempDir;

// Users a, b, c with 3, 2, 1 partitions; row r of width 2 * 2 holds the value r + 0.5 * i.
InterestTable small_table() {
  InterestTable t;
  t.variant = "content";
  t.encoder = "test";
  t.dim = 2;
  t.layout = "liked|other";
  const std::vector<std::pair<std::string, int>> users = {{"a", 3}, {"b", 2}, {"c", 1}};
  for (const auto& [u, n] : users)
    for (int s = 0; s < n; ++s) {
      const auto row = static_cast<uint32_t>(t.partitions.size());
      t.partitions.push_back({u, static_cast<uint32_t>(s), 100 * s, 100 * s + 50, row});
      for (int i = 0; i < 4; ++i) t.rows.push_back(static_cast<float>(row) + 0.5f * i);
    }
  return t;
}

std::vector<float> row_of(const InterestTable& t, std::size_t p) {
  const auto w = static_cast<std::size_t>(t.width());
  return {t.rows.begin() + static_cast<std::ptrdiff_t>(p * w),
          t.rows.begin() + static_cast<std::ptrdiff_t>((p + 1) * w)};
}

TEST(UifControls, RandomKeepsThePartitionsAndTimesAndIsFixedBySeed) {
  const InterestTable t = small_table();
  const InterestTable r = random_control(t, 7);
  ASSERT_EQ(r.partitions.size(), t.partitions.size());
  ASSERT_EQ(r.rows.size(), t.rows.size());
  for (std::size_t p = 0; p < t.partitions.size(); ++p) {
    EXPECT_EQ(r.partitions[p].user, t.partitions[p].user);
    EXPECT_EQ(r.partitions[p].t_end, t.partitions[p].t_end);
    EXPECT_NE(row_of(r, p), row_of(t, p));
    for (std::size_t q = 0; q < p; ++q) EXPECT_NE(row_of(r, p), row_of(r, q));
  }
  EXPECT_EQ(random_control(t, 7).rows, r.rows);
  EXPECT_NE(random_control(t, 8).rows, r.rows);
  EXPECT_EQ(r.variant, "random");
  // Standard normal: the mean and the variance of the 24 values are near 0 and 1.
  double m = 0, v = 0;
  for (float x : r.rows) m += x;
  m /= static_cast<double>(r.rows.size());
  for (float x : r.rows) v += (x - m) * (x - m);
  v /= static_cast<double>(r.rows.size());
  EXPECT_LT(std::abs(m), 0.7);
  EXPECT_GT(v, 0.3);
  EXPECT_LT(v, 3.0);
}

TEST(UifControls, ShuffledGivesEveryUserAnotherUsersRowsInOrder) {
  const InterestTable t = small_table();
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    const InterestTable s = shuffled_control(t, seed);
    ASSERT_EQ(s.partitions.size(), t.partitions.size());
    std::map<std::string, std::string> donor_of;
    for (std::size_t p = 0; p < t.partitions.size(); ++p) {
      EXPECT_EQ(s.partitions[p].user, t.partitions[p].user);
      EXPECT_EQ(s.partitions[p].t_end, t.partitions[p].t_end);
      // The row is some other user's partition (k mod n)'s row.
      const std::vector<float> got = row_of(s, p);
      std::string from;
      uint32_t from_seq = 0;
      for (std::size_t q = 0; q < t.partitions.size(); ++q)
        if (row_of(t, q) == got) {
          from = t.partitions[q].user;
          from_seq = t.partitions[q].seq;
        }
      ASSERT_FALSE(from.empty()) << "row " << p << " is nobody's";
      EXPECT_NE(from, t.partitions[p].user) << "seed " << seed;
      int donor_count = 0;
      for (const auto& q : t.partitions) donor_count += q.user == from;
      EXPECT_EQ(from_seq, t.partitions[p].seq % static_cast<uint32_t>(donor_count));
      auto [it, fresh] = donor_of.emplace(t.partitions[p].user, from);
      if (!fresh) EXPECT_EQ(it->second, from) << "one donor per user";
    }
    std::set<std::string> donors;
    for (const auto& [u, d] : donor_of) donors.insert(d);
    EXPECT_EQ(donors.size(), 3u) << "a permutation of the users";
  }
  InterestTable one = small_table();
  one.partitions.resize(3);  // user a only
  one.rows.resize(12);
  EXPECT_THROW(shuffled_control(one, 1), Error);
}

TEST(UifControls, JoinKeepsCommonPartitionsAndConcatenatesRows) {
  const InterestTable a = small_table();
  InterestTable b = random_control(small_table(), 3);
  b.variant = "llm";
  b.layout = "summary|shift";
  b.partitions.erase(b.partitions.begin() + 1);  // user a's seq 1 has no LLM record
  const InterestTable j = join_tables(a, b);
  ASSERT_EQ(j.partitions.size(), a.partitions.size() - 1);
  EXPECT_EQ(j.width(), a.width() + b.width());
  EXPECT_EQ(j.layout, "liked|other|summary|shift");
  const std::vector<float> first = row_of(j, 0);
  std::vector<float> expect = row_of(a, 0);
  const std::vector<float> tail = row_of(b, 0);
  expect.insert(expect.end(), tail.begin(), tail.end());
  EXPECT_EQ(first, expect);
  EXPECT_EQ(j.partitions[1].seq, 2u);  // (a, 1) is skipped
}

TEST(UifContent, ItemTextNamesTitleYearOnceAndEveryAttribute) {
  TempDir dir("liber-content");
  const BehaviorLog log = testing::ingest_ml1m_fixture(dir / "data", dir / "store", 2, 10, 5);
  const uint32_t row = 1;
  const std::string text = item_text(log, row);
  EXPECT_TRUE(text.starts_with(log.items.titles[row])) << text;
  const std::string year = std::to_string(log.items.years[row]);
  EXPECT_EQ(text.find(year), text.rfind(year)) << "year once: " << text;
  EXPECT_NE(text.find("genres: "), std::string::npos) << text;
}

TEST(UifContent, ContentRowsAreMeansOfLikedAndOtherItemTextVectors) {
  TempDir dir("liber-content");
  testing::ingest_ml1m_fixture(dir / "data", dir / "store", 3, 10, 5);  // 3 users x 2 partitions
  auto store = open_rocksdb_store(dir / "store");
  if (!testing::running_in_ci()) {
    try {
      default_encoder_path();
    } catch (const Error&) {
      GTEST_SKIP() << "the encoder GGUF is not built (run scripts/setup.sh)";
    }
  }
  const EncodeReport rep = encode_knowledge(*store, testing::shared_encoder(), EncodeOptions{});
  EXPECT_GT(rep.item_texts_encoded, 0u);
  const auto vectors = read_item_text_vectors(*store);
  const BehaviorLog log = load_behavior_log(*store, false);
  EXPECT_EQ(vectors.size(), log.items.size() - 1);

  const InterestTable t = load_content_table(*store, PartitionSet{});
  ASSERT_EQ(t.partitions.size(), 6u);
  EXPECT_EQ(t.dim, 384);
  EXPECT_EQ(t.width(), 768);
  EXPECT_EQ(t.layout, "liked|other");
  // Recomputed here from the partitions' events.
  std::vector<StoredPartition> parts;
  for_each_partition_in(*store, PartitionSet{}, [&](const StoredPartition& q) { parts.push_back(q); });
  std::size_t p = 0;
  for (const StoredPartition& part : parts) {
    const PartitionVector& pv = t.partitions[p];
    ASSERT_EQ(pv.user, part.user);
    ASSERT_EQ(pv.seq, part.seq);
    EXPECT_EQ(pv.t_end, part.t_end);
    std::vector<double> liked(384), other(384);
    int nl = 0, no = 0;
    for (const StoredEvent& e : part.events) {
      const bool like = e.rating >= log.like_threshold;
      const auto& v = vectors.at(e.item).values;
      for (int i = 0; i < 384; ++i) (like ? liked : other)[i] += v[i];
      (like ? nl : no) += 1;
    }
    const std::vector<float> row = row_of(t, p);
    for (int i = 0; i < 384; ++i) {
      EXPECT_NEAR(row[i], nl ? liked[i] / nl : 0.0, 1e-5);
      EXPECT_NEAR(row[384 + i], no ? other[i] / no : 0.0, 1e-5);
    }
    ++p;
  }
  EXPECT_EQ(p, 6u);
  // Restricted to users.
  EXPECT_EQ(load_content_table(*store, PartitionSet{}, {"2"}).partitions.size(), 2u);
}

}  // namespace
}  // namespace liber
