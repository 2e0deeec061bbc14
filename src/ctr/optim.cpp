// FusedAdam: Adam as one pass per parameter over raw memory.
#include "liber/ctr/optim.h"

#include <cmath>
#include <vector>

#include "liber/error.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace liber::ctr {

namespace {

struct AdamScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bias2, eps, step_size;
};

// m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= step * m / (sqrt(v) / sqrt(bc2) + eps)
void adam_update(float* __restrict p, const float* __restrict g, float* __restrict m,
                 float* __restrict v, int64_t n, const AdamScalars& k) {
  int64_t i = 0;
#if defined(__SSE2__)
  const __m128 b1 = _mm_set1_ps(k.beta1), c1 = _mm_set1_ps(k.one_minus_beta1);
  const __m128 b2 = _mm_set1_ps(k.beta2), c2 = _mm_set1_ps(k.one_minus_beta2);
  const __m128 sb2 = _mm_set1_ps(k.sqrt_bias2), eps = _mm_set1_ps(k.eps);
  const __m128 step = _mm_set1_ps(k.step_size);
  for (; i + 4 <= n; i += 4) {
    const __m128 gv = _mm_loadu_ps(g + i);
    const __m128 mv = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), b1), _mm_mul_ps(gv, c1));
    const __m128 vv = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), b2),
                                 _mm_mul_ps(_mm_mul_ps(gv, gv), c2));
    _mm_storeu_ps(m + i, mv);
    _mm_storeu_ps(v + i, vv);
    const __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vv), sb2), eps);
    _mm_storeu_ps(p + i, _mm_sub_ps(_mm_loadu_ps(p + i), _mm_mul_ps(step, _mm_div_ps(mv, denom))));
  }
#endif
  for (; i < n; ++i) {
    m[i] = m[i] * k.beta1 + g[i] * k.one_minus_beta1;
    v[i] = v[i] * k.beta2 + g[i] * g[i] * k.one_minus_beta2;
    p[i] -= k.step_size * (m[i] / (std::sqrt(v[i]) / k.sqrt_bias2 + k.eps));
  }
}

}  // namespace

FusedAdam::FusedAdam(std::vector<torch::Tensor> params, double lr, double beta1, double beta2,
                     double eps)
    : params_(std::move(params)), lr_(lr), beta1_(beta1), beta2_(beta2), eps_(eps) {
  for (const torch::Tensor& p : params_) {
    LIBER_ASSERT(p.scalar_type() == torch::kFloat && p.is_contiguous());
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
}

void FusedAdam::zero_grad() {
  for (torch::Tensor& p : params_) p.mutable_grad() = torch::Tensor();
}

void FusedAdam::step() {
  ++step_;
  const double bias1 = 1 - std::pow(beta1_, static_cast<double>(step_));
  const double bias2 = 1 - std::pow(beta2_, static_cast<double>(step_));
  const AdamScalars k{static_cast<float>(beta1_), static_cast<float>(1 - beta1_),
                      static_cast<float>(beta2_), static_cast<float>(1 - beta2_),
                      static_cast<float>(std::sqrt(bias2)), static_cast<float>(eps_),
                      static_cast<float>(lr_ / bias1)};
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& grad = params_[i].grad();
    if (!grad.defined()) continue;
    const torch::Tensor g = grad.contiguous();
    float* p = params_[i].data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* m = exp_avg_[i].data_ptr<float>();
    float* v = exp_avg_sq_[i].data_ptr<float>();
    at::parallel_for(0, g.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      adam_update(p + begin, gp + begin, m + begin, v + begin, end - begin, k);
    });
    params_[i].unsafeGetTensorImpl()->bump_version();  // as an in-place op would
  }
}

}  // namespace liber::ctr
