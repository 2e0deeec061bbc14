// Metrics against hand-computed values, and the fast AUC against a brute-force pair count.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "liber/metrics.h"

namespace {

// O(P*N) definition: fraction of (pos, neg) pairs ordered correctly, ties = 1/2.
double brute_force_auc(const std::vector<float>& y, const std::vector<float>& s) {
  double good = 0, pairs = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    for (std::size_t j = 0; j < y.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1;
        good += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
      }
  return good / pairs;
}

TEST(Metrics, AucHandComputed) {
  // positives 0.8, 0.4; negatives 0.6, 0.2: pairs (0.8>0.6)(0.8>0.2)(0.4<0.6)(0.4>0.2) = 3/4
  std::vector<float> y{1, 0, 1, 0}, s{0.8f, 0.6f, 0.4f, 0.2f};
  EXPECT_DOUBLE_EQ(liber::auc(y, s), 0.75);
}

TEST(Metrics, AucTiesCountHalf) {
  // positive 0.5 ties negative 0.5 (1/2), beats negative 0.1 (1); positive 0.9 beats both.
  std::vector<float> y{1, 0, 0, 1}, s{0.5f, 0.5f, 0.1f, 0.9f};
  EXPECT_DOUBLE_EQ(liber::auc(y, s), 3.5 / 4.0);
  std::vector<float> all_same{0.3f, 0.3f, 0.3f, 0.3f};
  EXPECT_DOUBLE_EQ(liber::auc(y, all_same), 0.5);
}

TEST(Metrics, AucSingleClassIsNaN) {
  std::vector<float> y{1, 1}, s{0.2f, 0.7f};
  EXPECT_TRUE(std::isnan(liber::auc(y, s)));
}

TEST(Metrics, AucMatchesBruteForceWithManyTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> y, s;
    for (int i = 0; i < 300; ++i) {
      y.push_back(static_cast<float>(rng() % 2));
      s.push_back(static_cast<float>(rng() % 17) / 16.0f);  // heavy ties
    }
    EXPECT_NEAR(liber::auc(y, s), brute_force_auc(y, s), 1e-12);
  }
}

TEST(Metrics, LoglossHandComputed) {
  std::vector<float> y{1, 0}, s{0.8f, 0.4f};
  double expected = -(std::log(0.8) + std::log(0.6)) / 2;
  EXPECT_NEAR(liber::logloss(y, s), expected, 1e-7);
  // Clipping keeps a confident mistake finite: -log(1e-7).
  std::vector<float> y1{1}, s0{0.0f};
  EXPECT_NEAR(liber::logloss(y1, s0), -std::log(1e-7), 1e-6);
}

TEST(Metrics, GaucWeightsUsersBySampleCountAndSkipsOneClassUsers) {
  // user 1: 4 samples, AUC 0.75; user 2: 2 samples, AUC 0 (inverted); user 3: one class.
  std::vector<float> y{1, 0, 1, 0, 1, 0, 1, 1};
  std::vector<float> s{0.8f, 0.6f, 0.4f, 0.2f, 0.1f, 0.9f, 0.5f, 0.5f};
  std::vector<uint32_t> g{1, 1, 1, 1, 2, 2, 3, 3};
  EXPECT_DOUBLE_EQ(liber::gauc(y, s, g), (0.75 * 4 + 0.0 * 2) / 6.0);
}

}  // namespace
