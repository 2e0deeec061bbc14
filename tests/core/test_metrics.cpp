// Metrics against hand-computed values, and the fast AUC against a brute-force pair count.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "liber/error.h"
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

using namespace liber;  // the tests below

// Weighted AUC against its definition: the plain AUC of the samples repeated weight times.
TEST(Metrics, WeightedAucEqualsAucOfRepeatedSamples) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> score(0, 9), weight(0, 3), label(0, 1);
  std::vector<float> labels, scores, rep_labels, rep_scores;
  std::vector<double> weights;
  for (int i = 0; i < 300; ++i) {
    labels.push_back(static_cast<float>(label(rng)));
    scores.push_back(static_cast<float>(score(rng)) / 10.f);  // many ties
    weights.push_back(weight(rng));
    for (int k = 0; k < weights.back(); ++k) {
      rep_labels.push_back(labels.back());
      rep_scores.push_back(scores.back());
    }
  }
  EXPECT_NEAR(weighted_auc(labels, scores, weights), auc(rep_labels, rep_scores), 1e-12);
}

namespace {
// Samples of `users` users, 20 each; the reference's and the model's scores are independent
// noise around the label, the model's with `gain` more signal.
struct PairedRuns {
  std::vector<float> labels;
  std::vector<uint32_t> groups;
  std::vector<std::vector<float>> model, reference;
};
PairedRuns paired_runs(int users, double gain, int runs) {
  PairedRuns p;
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0, 1);
  for (int u = 0; u < users; ++u)
    for (int i = 0; i < 20; ++i) {
      p.labels.push_back(static_cast<float>((u + i) % 2));
      p.groups.push_back(static_cast<uint32_t>(1000 + u));
    }
  for (int r = 0; r < runs; ++r) {
    std::vector<float> m, b;
    for (float y : p.labels) {
      const double base = 0.5 * y + noise(rng);
      b.push_back(static_cast<float>(base));
      m.push_back(static_cast<float>((0.5 + gain) * y + noise(rng)));
    }
    p.model.push_back(m);
    p.reference.push_back(b);
  }
  return p;
}
}  // namespace

TEST(Metrics, PairedBootstrapOfAModelAgainstItselfIsExactlyZero) {
  const PairedRuns p = paired_runs(50, 0.0, 2);
  const AucDifference d = paired_bootstrap_auc(p.labels, p.groups, p.reference, p.reference, 200);
  EXPECT_EQ(d.estimate, 0.0);
  EXPECT_EQ(d.lo, 0.0);
  EXPECT_EQ(d.hi, 0.0);
  EXPECT_FALSE(d.excludes_zero());
  EXPECT_EQ(d.resamples, 200);
}

TEST(Metrics, PairedBootstrapFindsAPlantedGainAndNotNoise) {
  const PairedRuns gain = paired_runs(200, 0.5, 3);
  const AucDifference g = paired_bootstrap_auc(gain.labels, gain.groups, gain.model, gain.reference);
  // The estimate is the mean of the per-run AUC differences on all samples.
  double expect = 0;
  for (int r = 0; r < 3; ++r) expect += auc(gain.labels, gain.model[r]) - auc(gain.labels, gain.reference[r]);
  EXPECT_NEAR(g.estimate, expect / 3, 1e-12);
  EXPECT_GT(g.lo, 0.0);
  EXPECT_LT(g.lo, g.estimate);
  EXPECT_GT(g.hi, g.estimate);

  const PairedRuns none = paired_runs(200, 0.0, 3);  // as good as the reference
  const AucDifference z = paired_bootstrap_auc(none.labels, none.groups, none.model, none.reference);
  EXPECT_LT(z.lo, 0.0);
  EXPECT_GT(z.hi, 0.0);
  EXPECT_LT(z.hi - z.lo, g.hi - g.lo + 0.05);
}

TEST(Metrics, PairedBootstrapRefusesUnpairedRuns) {
  const PairedRuns p = paired_runs(10, 0.1, 2);
  std::vector<std::vector<float>> one = {p.model[0]};
  EXPECT_THROW(paired_bootstrap_auc(p.labels, p.groups, one, p.reference), Error);
  std::vector<std::vector<float>> short_run = {p.model[0], std::vector<float>(3, 0.f)};
  EXPECT_THROW(paired_bootstrap_auc(p.labels, p.groups, short_run, p.reference), Error);
}
