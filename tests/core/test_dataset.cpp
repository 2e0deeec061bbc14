// The CTR sample builder: split boundaries, history, labels and feature columns, on a
// hand-made log small enough to check every value.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "liber/dataset.h"
#include "liber/error.h"

namespace {

using liber::BehaviorLog;
using liber::Event;

// Two users; user "a" has 20 events, user "b" 10, given out of time order on purpose.
BehaviorLog make_log() {
  BehaviorLog log;
  log.name = "hand";
  for (int i = 1; i <= 30; ++i) {
    log.items.ids.add("m" + std::to_string(i));
  }
  log.items.titles.assign(log.items.ids.size(), "t");
  log.items.years.assign(log.items.ids.size(), 0);
  log.items.years[1] = 1990;
  log.items.years[2] = 2000;
  liber::Attribute genres;
  genres.name = "genres";
  genres.multi = true;
  std::vector<std::string> none;
  genres.push_row(none);  // row 0: unknown item
  for (int i = 1; i <= 30; ++i) {
    std::vector<std::string> g{i % 2 ? "Drama" : "Comedy"};
    if (i % 3 == 0) g.push_back("Action");
    genres.push_row(g);
  }
  log.items.attributes.push_back(std::move(genres));
  uint32_t a = log.users.ids.add("a"), b = log.users.ids.add("b");
  liber::Attribute gender;
  gender.name = "gender";
  gender.push_row(none);
  gender.push_row(std::vector<std::string>{"F"});
  gender.push_row(std::vector<std::string>{"M"});
  log.users.attributes.push_back(std::move(gender));
  // user a: item i at time 100*i, rating 5 for even i, else 2; inserted newest first.
  for (int i = 20; i >= 1; --i)
    log.events.push_back({a, static_cast<uint32_t>(i), 100 * i, i % 2 ? 2.0f : 5.0f, -1});
  for (int i = 1; i <= 10; ++i)
    log.events.push_back({b, static_cast<uint32_t>(i + 10), 50 * i, 4.0f, -1});
  return log;
}

TEST(Dataset, PerUserChronologicalSplit) {
  auto data = liber::build_ctr_dataset(make_log(), {});
  // a: 20 events -> test round(2.0)=2, fit 18, valid round(1.8)=2, train 16.
  // b: 10 events -> test 1, fit 9, valid round(0.9)=1, train 8.
  EXPECT_EQ(data.train.size(), 16u + 8u);
  EXPECT_EQ(data.valid.size(), 2u + 1u);
  EXPECT_EQ(data.test.size(), 2u + 1u);
  // Every test sample is later than every train/valid sample of the same user.
  for (std::size_t i = 0; i < data.test.size(); ++i)
    for (std::size_t j = 0; j < data.train.size(); ++j)
      if (data.train.users[j] == data.test.users[i])
        EXPECT_LT(data.train.timestamps[j], data.test.timestamps[i]);
  EXPECT_EQ(data.test.timestamps[0], 1900);  // user a's test = items 19, 20
  EXPECT_EQ(data.test.timestamps[1], 2000);
  EXPECT_EQ(data.valid.timestamps[0], 1700);
}

TEST(Dataset, LabelsFromLikeThreshold) {
  auto data = liber::build_ctr_dataset(make_log(), {});
  // user a, train sample k is item k+1: rating 5 (like) for even items.
  for (std::size_t k = 0; k < 16; ++k)
    EXPECT_EQ(data.train.labels[k], (k + 1) % 2 == 0 ? 1.0f : 0.0f) << k;
  // user b: rating 4 is a like (threshold is inclusive).
  EXPECT_EQ(data.train.labels[16], 1.0f);
}

TEST(Dataset, HistoryIsMostRecentFirstAndStrictlyEarlier) {
  liber::SplitConfig cfg;
  cfg.history_length = 3;
  auto data = liber::build_ctr_dataset(make_log(), cfg);
  const auto& s = data.schema;
  ASSERT_GE(s.history_field, 0);
  std::size_t width = 0, hist_off = 0;
  for (std::size_t f = 0; f < s.sequences.size(); ++f) {
    if (static_cast<int>(f) == s.history_field) hist_off = width;
    width += static_cast<std::size_t>(s.sequences[f].length);
  }
  auto hist = [&](const liber::SampleSet& set, std::size_t i) {
    return std::vector<int64_t>(set.sequences.begin() + i * width + hist_off,
                                set.sequences.begin() + i * width + hist_off + 3);
  };
  EXPECT_EQ(hist(data.train, 0), (std::vector<int64_t>{0, 0, 0}));  // first event: none
  EXPECT_EQ(hist(data.train, 1), (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(hist(data.train, 5), (std::vector<int64_t>{5, 4, 3}));
  // Test samples see the user's train and validation events as history.
  EXPECT_EQ(hist(data.test, 0), (std::vector<int64_t>{18, 17, 16}));
  EXPECT_EQ(hist(data.test, 1), (std::vector<int64_t>{19, 18, 17}));
}

TEST(Dataset, FeatureColumns) {
  auto data = liber::build_ctr_dataset(make_log(), {});
  const auto& s = data.schema;
  std::vector<std::string> names;
  for (const auto& f : s.sparse) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"user_id", "user_gender", "item_id", "item_year"}));
  EXPECT_EQ(s.sparse[s.target_item_field].name, "item_id");
  ASSERT_EQ(s.sequences.size(), 2u);
  EXPECT_EQ(s.sequences[0].name, "item_genres");
  EXPECT_EQ(s.sequences[0].length, 2);  // longest genre list
  EXPECT_EQ(s.sequences[1].shares_embedding_with, "item_id");
  // First train sample: user a (id 1, gender F = code 1), item 1 (year 1990 -> year id 1).
  const std::size_t F = s.sparse.size();
  EXPECT_EQ(std::vector<int64_t>(data.train.sparse.begin(), data.train.sparse.begin() + F),
            (std::vector<int64_t>{1, 1, 1, 1}));
  // Item 2 has year 2000 -> id 2; item 3 has no year -> 0.
  EXPECT_EQ(data.train.sparse[1 * F + 3], 2);
  EXPECT_EQ(data.train.sparse[2 * F + 3], 0);
}

TEST(Dataset, EmptyLogIsAnError) {
  BehaviorLog log = make_log();
  log.events.clear();
  EXPECT_THROW(liber::build_ctr_dataset(log, {}), liber::Error);
}

TEST(Dataset, DeterministicAcrossBuilds) {
  auto a = liber::build_ctr_dataset(make_log(), {});
  auto b = liber::build_ctr_dataset(make_log(), {});
  EXPECT_EQ(a.train.sparse, b.train.sparse);
  EXPECT_EQ(a.train.sequences, b.train.sequences);
  EXPECT_EQ(a.test.labels, b.test.labels);
}

}  // namespace

// The export's join keys: each row ends with its sample's external user id (CSV-quoted when
// it needs to be) and timestamp, the keys liber.join takes.
TEST(Dataset, ExportEndsEachRowWithTheSamplesUserAndTimestamp) {
  const auto data = liber::build_ctr_dataset(make_log(), {});
  liber::Vocab names;  // the users' external ids: "a" -> a comma, "b" -> a quote
  names.add("a,1");
  names.add("b\"2");
  const auto dir = std::filesystem::temp_directory_path() / ("liber-export-" + std::to_string(getpid()));
  liber::export_ctr_dataset_csv(data, names, dir.string());
  std::ifstream in(dir / "train.csv");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_TRUE(line.ends_with(",label,user,timestamp")) << line;
  std::size_t i = 0;
  for (; std::getline(in, line); ++i) {
    ASSERT_LT(i, data.train.size());
    const std::string want_user = data.train.users[i] == 1 ? "\"a,1\"" : "\"b\"\"2\"";
    EXPECT_TRUE(line.ends_with("," + want_user + "," + std::to_string(data.train.timestamps[i]))) << line;
  }
  EXPECT_EQ(i, data.train.size());
  std::filesystem::remove_all(dir);
}
