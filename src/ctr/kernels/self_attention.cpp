// AutoInt's interacting layer, with the attention itself as one fused kernel.
#include "liber/ctr/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "liber/ctr/vector_ops.h"
#include "liber/error.h"

namespace liber::ctr {

namespace {

// One AutoInt interacting layer after its projections: proj [B, F, 4 * H * A] holds
// (query | key | value | residual) per field; out = relu(MultiHeadAttention(q, k, v) + r),
// [B, F, H * A], attention unscaled as in AutoInt. Per sample and head it is a few F x F x A
// products: libtorch 1.13 runs batched matmuls of that size one small GEMM per batch entry
// (with copies for the transposes), several times slower than these loops.
struct InteractingKernels {
  int64_t f, width, heads, a;  // fields, H * A, H, A

  // Row i of sample s's projections; part 0..3 = query, key, value, residual.
  const float* at(const float* x, int64_t i, int part, int64_t h) const {
    return x + i * 4 * width + part * width + h * a;
  }

  template <int64_t A>
  void forward(const float* x, float* probs, float* out, int64_t begin, int64_t end) const {
    std::vector<float> acc(static_cast<std::size_t>(a));
    for (int64_t s = begin; s < end; ++s) {
      const float* row = x + s * f * 4 * width;
      for (int64_t h = 0; h < heads; ++h) {
        float* p = probs + (s * heads + h) * f * f;
        for (int64_t i = 0; i < f; ++i) {
          float* pi = p + i * f;
          float top = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < f; ++j) {
            pi[j] = dot<A>(at(row, i, 0, h), at(row, j, 1, h), a);
            top = std::max(top, pi[j]);
          }
          float total = 0;
          for (int64_t j = 0; j < f; ++j) {
            pi[j] = std::exp(pi[j] - top);
            total += pi[j];
          }
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int64_t j = 0; j < f; ++j) {
            pi[j] /= total;
            axpy<A>(pi[j], at(row, j, 2, h), acc.data(), a);
          }
          const float* r = at(row, i, 3, h);
          float* o = out + (s * f + i) * width + h * a;
          for (int64_t c = 0; c < a; ++c) o[c] = std::max(acc[c] + r[c], 0.0f);
        }
      }
    }
  }

  // g: the output gradient through the ReLU, [B, F, H * A]; grad: zeroed like x.
  template <int64_t A>
  void backward(const float* x, const float* probs, const float* g, float* grad, int64_t begin,
                int64_t end) const {
    std::vector<float> dscore(static_cast<std::size_t>(f * f));
    for (int64_t s = begin; s < end; ++s) {
      const float* row = x + s * f * 4 * width;
      float* drow = grad + s * f * 4 * width;
      const float* gs = g + s * f * width;
      for (int64_t h = 0; h < heads; ++h) {
        const float* p = probs + (s * heads + h) * f * f;
        for (int64_t i = 0; i < f; ++i) {
          const float* gi = gs + i * width + h * a;
          std::copy(gi, gi + a, const_cast<float*>(at(drow, i, 3, h)));  // residual
          float weighted = 0;
          for (int64_t j = 0; j < f; ++j) {
            axpy<A>(p[i * f + j], gi, const_cast<float*>(at(drow, j, 2, h)), a);  // dV
            dscore[i * f + j] = dot<A>(gi, at(row, j, 2, h), a);                  // dP
            weighted += p[i * f + j] * dscore[i * f + j];
          }
          for (int64_t j = 0; j < f; ++j)  // through the softmax
            dscore[i * f + j] = p[i * f + j] * (dscore[i * f + j] - weighted);
        }
        for (int64_t i = 0; i < f; ++i)
          for (int64_t j = 0; j < f; ++j) {
            const float ds = dscore[i * f + j];
            axpy<A>(ds, at(row, j, 1, h), const_cast<float*>(at(drow, i, 0, h)), a);  // dQ
            axpy<A>(ds, at(row, i, 0, h), const_cast<float*>(at(drow, j, 1, h)), a);  // dK
          }
      }
    }
  }
};

class InteractingLayer : public torch::autograd::Function<InteractingLayer> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& proj,
                               int64_t heads) {
    const torch::Tensor x = proj.contiguous();
    const int64_t b = x.size(0), f = x.size(1), width = x.size(2) / 4;
    const InteractingKernels k{f, width, heads, width / heads};
    torch::Tensor out = torch::empty({b, f, width}, x.options());
    torch::Tensor probs = torch::empty({b, heads, f, f}, x.options());
    const float* xp = x.data_ptr<float>();
    float* pp = probs.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
      dispatch_width(k.a, [&]<int64_t A>() { k.forward<A>(xp, pp, op, begin, end); });
    });
    ctx->save_for_backward({x, probs, out});
    ctx->saved_data["heads"] = heads;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &probs = saved[1], &out = saved[2];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const int64_t b = x.size(0), f = x.size(1), width = x.size(2) / 4;
    const InteractingKernels k{f, width, heads, width / heads};
    // Through the ReLU: g = grad * (out > 0), which is also the residual's gradient.
    const torch::Tensor g = grads[0].mul(out.gt(0)).contiguous();
    torch::Tensor grad = torch::zeros_like(x);
    const float* xp = x.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* dp = grad.data_ptr<float>();
    at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
      dispatch_width(k.a, [&]<int64_t A>() { k.backward<A>(xp, pp, gp, dp, begin, end); });
    });
    return {grad, torch::Tensor()};
  }
};

}  // namespace

SelfAttentionImpl::SelfAttentionImpl(int64_t input_dim, int64_t attention_dim, int64_t heads,
                                     bool allow_fused)
    : attention_dim_(attention_dim), heads_(heads), fused_(allow_fused) {
  if (attention_dim <= 0 || heads <= 0)
    throw Error(ErrorKind::Config, "attention_dim and attention_heads must be positive");
  auto make = [&](const char* name) {
    torch::nn::Linear linear(torch::nn::LinearOptions(input_dim, attention_dim * heads).bias(false));
    init_linear(linear);
    return register_module(name, linear);
  };
  query_ = make("query");
  key_ = make("key");
  value_ = make("value");
  residual_ = make("residual");
}

torch::Tensor SelfAttentionImpl::forward(torch::Tensor x) {
  const int64_t b = x.size(0), f = x.size(1), width = heads_ * attention_dim_;
  if (fused_ && b > 0) {
    // The four projections as one product, then the fused interacting layer.
    torch::Tensor w = torch::cat({query_->weight, key_->weight, value_->weight, residual_->weight});
    torch::Tensor proj = x.reshape({b * f, -1}).mm(w.t()).view({b, f, 4 * width});
    return InteractingLayer::apply(proj, heads_);
  }
  auto split = [&](torch::Tensor t) {  // [B, F, h*a] -> [B, h, F, a]
    return t.view({b, f, heads_, attention_dim_}).transpose(1, 2);
  };
  torch::Tensor q = split(query_(x)), k = split(key_(x)), v = split(value_(x));
  torch::Tensor weights = torch::softmax(torch::matmul(q, k.transpose(-2, -1)), -1);  // [B,h,F,F]
  torch::Tensor out = torch::matmul(weights, v).transpose(1, 2).reshape({b, f, width});
  return torch::relu(out + residual_(x));
}

}  // namespace liber::ctr
