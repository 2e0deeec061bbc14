// Ranking and calibration metrics for binary CTR predictions.
#pragma once

#include <cstdint>
#include <span>

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

}  // namespace liber
