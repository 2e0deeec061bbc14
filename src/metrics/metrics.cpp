#include "liber/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "liber/error.h"

namespace liber {
namespace {

// AUC over the samples idx[0..n): sort by score, give tied scores their mid-rank, and
// U = sum of positive ranks - P(P+1)/2; AUC = U / (P N). O(n log n), exact with ties.
double auc_of(std::span<const float> labels, std::span<const float> scores,
              std::vector<uint32_t>& idx) {
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  double pos = 0, rank_sum = 0;
  std::size_t n = idx.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    double tied_pos = 0;
    while (j < n && scores[idx[j]] == scores[idx[i]]) tied_pos += labels[idx[j++]] > 0.5f;
    // ranks i+1..j share the mean rank (i+1+j)/2
    rank_sum += tied_pos * (static_cast<double>(i + 1 + j) / 2.0);
    pos += tied_pos;
    i = j;
  }
  double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

}  // namespace

double auc(std::span<const float> labels, std::span<const float> scores) {
  LIBER_ASSERT(labels.size() == scores.size());
  std::vector<uint32_t> idx(labels.size());
  std::iota(idx.begin(), idx.end(), 0u);
  return auc_of(labels, scores, idx);
}

double logloss(std::span<const float> labels, std::span<const float> scores) {
  LIBER_ASSERT(labels.size() == scores.size());
  if (labels.empty()) return std::numeric_limits<double>::quiet_NaN();
  constexpr double eps = 1e-7;
  double sum = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    double p = std::clamp(static_cast<double>(scores[i]), eps, 1.0 - eps);
    sum += labels[i] > 0.5f ? -std::log(p) : -std::log(1.0 - p);
  }
  return sum / static_cast<double>(labels.size());
}

double gauc(std::span<const float> labels, std::span<const float> scores,
            std::span<const uint32_t> groups) {
  LIBER_ASSERT(labels.size() == scores.size() && labels.size() == groups.size());
  std::vector<uint32_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return groups[a] < groups[b]; });
  double weighted = 0, weight = 0;
  std::vector<uint32_t> idx;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j < order.size() && groups[order[j]] == groups[order[i]]) ++j;
    idx.assign(order.begin() + i, order.begin() + j);
    double a = auc_of(labels, scores, idx);
    if (!std::isnan(a)) {
      weighted += a * static_cast<double>(j - i);
      weight += static_cast<double>(j - i);
    }
    i = j;
  }
  return weight > 0 ? weighted / weight : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace liber
