#include "liber/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

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

namespace {

// Weighted AUC over samples already sorted by score (`order`): one pass, tied scores as one
// group. U = sum over groups of P_g * (negatives below + N_g / 2).
double sorted_weighted_auc(std::span<const float> labels, std::span<const float> scores,
                           std::span<const uint32_t> order, const double* weight) {
  double below = 0, u = 0, pos = 0;
  const std::size_t n = order.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    double p = 0, q = 0;
    for (; j < n && scores[order[j]] == scores[order[i]]; ++j) {
      const double w = weight[order[j]];
      (labels[order[j]] > 0.5f ? p : q) += w;
    }
    u += p * (below + q / 2.0);
    below += q;
    pos += p;
    i = j;
  }
  if (pos == 0 || below == 0) return std::numeric_limits<double>::quiet_NaN();
  return u / (pos * below);
}

std::vector<uint32_t> order_by(std::span<const float> scores) {
  std::vector<uint32_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  return idx;
}

double percentile(std::vector<double> v, double q) {  // linear between order statistics
  std::sort(v.begin(), v.end());
  const double at = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(at));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

}  // namespace

double weighted_auc(std::span<const float> labels, std::span<const float> scores,
                    std::span<const double> weights) {
  LIBER_ASSERT(labels.size() == scores.size() && labels.size() == weights.size());
  const auto order = order_by(scores);
  return sorted_weighted_auc(labels, scores, order, weights.data());
}

AucDifference paired_bootstrap_auc(std::span<const float> labels, std::span<const uint32_t> groups,
                                   const std::vector<std::vector<float>>& model,
                                   const std::vector<std::vector<float>>& reference,
                                   int resamples, uint64_t seed) {
  const std::size_t n = labels.size();
  if (model.empty() || model.size() != reference.size())
    throw Error(ErrorKind::InvalidInput, "paired_bootstrap_auc: runs must pair one to one");
  if (groups.size() != n) throw Error(ErrorKind::InvalidInput, "paired_bootstrap_auc: a group per sample");
  for (std::size_t r = 0; r < model.size(); ++r)
    if (model[r].size() != n || reference[r].size() != n)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("paired_bootstrap_auc: run {} has {} / {} scores for {} samples", r,
                              model[r].size(), reference[r].size(), n));
  // Dense group index per sample.
  std::unordered_map<uint32_t, uint32_t> dense;
  std::vector<uint32_t> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = dense.try_emplace(groups[i], dense.size()).first->second;
  const std::size_t k = dense.size();
  std::vector<std::vector<uint32_t>> m_order, r_order;
  for (std::size_t r = 0; r < model.size(); ++r) {
    m_order.push_back(order_by(model[r]));
    r_order.push_back(order_by(reference[r]));
  }
  auto diff = [&](const double* w) {
    double d = 0;
    for (std::size_t r = 0; r < model.size(); ++r)
      d += sorted_weighted_auc(labels, model[r], m_order[r], w) -
           sorted_weighted_auc(labels, reference[r], r_order[r], w);
    return d / static_cast<double>(model.size());
  };
  AucDifference out;
  std::vector<double> w(n, 1.0);
  out.estimate = diff(w.data());
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, k - 1);
  std::vector<double> times(k), draws;
  for (int b = 0; b < resamples; ++b) {
    std::fill(times.begin(), times.end(), 0.0);
    for (std::size_t i = 0; i < k; ++i) times[pick(rng)] += 1.0;
    for (std::size_t i = 0; i < n; ++i) w[i] = times[g[i]];
    const double d = diff(w.data());
    if (!std::isnan(d)) draws.push_back(d);  // a resample with one class only says nothing
  }
  out.resamples = static_cast<int>(draws.size());
  if (draws.empty()) {
    out.lo = out.hi = std::numeric_limits<double>::quiet_NaN();
  } else {
    out.lo = percentile(draws, 0.025);
    out.hi = percentile(draws, 0.975);
  }
  return out;
}

}  // namespace liber
