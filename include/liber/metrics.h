// Ranking and calibration metrics for binary CTR predictions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace liber {

// Exact ROC AUC: the probability that a random positive scores above a random negative,
// ties counting one half (Mann-Whitney U with mid-ranks). Returns NaN when only one class
// is present.
double auc(std::span<const float> labels, std::span<const float> scores);

// Mean binary cross-entropy; predictions are clipped to [eps, 1 - eps], eps = 1e-7.
double logloss(std::span<const float> labels, std::span<const float> scores);

// Group AUC: per-user AUC averaged with weights = the user's sample count, over users that
// have both classes (others are skipped, as in FuxiCTR's gAUC).
double gauc(std::span<const float> labels, std::span<const float> scores,
            std::span<const uint32_t> groups);

// A difference of AUC between two models on the same test samples, with a 95% interval.
struct AucDifference {
  double estimate = 0;        // mean over runs of AUC(model) - AUC(reference), all samples
  double lo = 0, hi = 0;      // 2.5% and 97.5% percentiles over the resamples
  int resamples = 0;
  bool excludes_zero() const { return lo > 0 || hi < 0; }
};

// Paired bootstrap over groups (users): each resample draws the groups with replacement
// (a group drawn k times weighs k), and computes, on the same weights, the mean over runs r
// of AUC(model[r]) - AUC(reference[r]). Runs are paired (same seed, same samples), so the
// interval holds the users' variation, not the seeds'. Every score vector has one score
// per sample. O(runs x (n log n + resamples x n)).
AucDifference paired_bootstrap_auc(std::span<const float> labels,
                                   std::span<const uint32_t> groups,
                                   const std::vector<std::vector<float>>& model,
                                   const std::vector<std::vector<float>>& reference,
                                   int resamples = 1000, uint64_t seed = 1);

// AUC with a weight per sample (a sample of weight k counts as k copies; weight 0 as none),
// ties one half. NaN when one class has no weight.
double weighted_auc(std::span<const float> labels, std::span<const float> scores,
                    std::span<const double> weights);

}  // namespace liber
