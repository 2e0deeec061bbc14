// DIN's target attention, with its one-hidden-layer MLP fused into one kernel.
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

// scores[r] = w . relu(pre[r] + query[r / n]) + bias for the rows r of [B * n, h]: DIN's
// one-hidden-layer attention MLP after its first matrix product, fused so that the
// [B, n, h] activations are written once forward and once backward (libtorch's add, relu,
// linear and their backward each make a pass over them).
class AttentionScores : public torch::autograd::Function<AttentionScores> {
 public:
  static constexpr int64_t kChunk = 32;  // samples per task; fixes the summation order

  // hidden = relu(pre + query); returns w . hidden. Eight partial sums in a fixed order
  // let the compiler vectorize without reassociating.
  static float hidden_row(const float* __restrict pre, const float* __restrict query,
                          const float* __restrict w, float* __restrict hidden, int64_t h) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= h; j += 8)
      for (int l = 0; l < 8; ++l) {
        const float v = std::max(pre[j + l] + query[j + l], 0.0f);
        hidden[j + l] = v;
        acc[l] += v * w[j + l];
      }
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < h; ++j) {
      const float v = std::max(pre[j] + query[j], 0.0f);
      hidden[j] = v;
      sum += v * w[j];
    }
    return sum;
  }

  static void hidden_row_backward(const float* __restrict hidden, const float* __restrict w,
                                  float g, float* __restrict grad_pre,
                                  float* __restrict grad_query, float* __restrict grad_w,
                                  int64_t h) {
    for (int64_t j = 0; j < h; ++j) {
      const float v = static_cast<float>(hidden[j] > 0.0f) * (g * w[j]);  // branch-free: vectorizes
      grad_pre[j] = v;
      grad_query[j] += v;
      grad_w[j] += g * hidden[j];
    }
  }

  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& pre,
                               const torch::Tensor& query, const torch::Tensor& weight,
                               const torch::Tensor& bias) {
    const torch::Tensor p = pre.contiguous(), q = query.contiguous();
    const torch::Tensor w = weight.contiguous().view(-1);
    const int64_t b = q.size(0), h = q.size(1), n = p.size(0) / b;
    torch::Tensor hidden = torch::empty_like(p);
    torch::Tensor scores = torch::empty({p.size(0)}, p.options());
    const float* pp = p.data_ptr<float>();
    const float* qp = q.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float b0 = bias.item<float>();
    float* hp = hidden.data_ptr<float>();
    float* sp = scores.data_ptr<float>();
    at::parallel_for(0, b, kChunk, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s)
        for (int64_t r = s * n; r < (s + 1) * n; ++r)
          sp[r] = hidden_row(pp + r * h, qp + s * h, wp, hp + r * h, h) + b0;
    });
    ctx->save_for_backward({hidden, w});
    ctx->saved_data["n"] = n;
    return scores;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& hidden = saved[0];
    const torch::Tensor& w = saved[1];
    const torch::Tensor g = grads[0].contiguous();
    const int64_t rows = hidden.size(0), h = hidden.size(1);
    const int64_t n = ctx->saved_data["n"].toInt(), batch = rows / n;
    torch::Tensor grad_pre = torch::empty_like(hidden);
    torch::Tensor grad_query = torch::zeros({batch, h}, hidden.options());
    const int64_t chunks = (batch + kChunk - 1) / kChunk;
    torch::Tensor grad_weight_parts = torch::zeros({chunks, h}, hidden.options());
    const float* hp = hidden.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* gpre = grad_pre.data_ptr<float>();
    float* gq = grad_query.data_ptr<float>();
    float* gw = grad_weight_parts.data_ptr<float>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c)
        for (int64_t s = c * kChunk; s < std::min(batch, (c + 1) * kChunk); ++s)
          for (int64_t r = s * n; r < (s + 1) * n; ++r)
            hidden_row_backward(hp + r * h, wp, gp[r], gpre + r * h, gq + s * h, gw + c * h, h);
    });
    return {grad_pre, grad_query, grad_weight_parts.sum(0).view({1, h}), g.sum().view({1})};
  }
};

// out[b] = sum_n scores[b, n] * mask[b, n] * keys[b, n]: the attention-weighted sum of the
// history, one pass each way (libtorch: a mask multiply and a batched 1 x N by N x d GEMM
// per sample, forward and twice backward).
class MaskedWeightedSum : public torch::autograd::Function<MaskedWeightedSum> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& scores,
                               const torch::Tensor& mask, const torch::Tensor& keys) {
    const torch::Tensor s = scores.contiguous(), m = mask.contiguous(), k = keys.contiguous();
    const int64_t b = k.size(0), n = k.size(1), d = k.size(2);
    torch::Tensor out = torch::zeros({b, d}, k.options());
    const float* sp = s.data_ptr<float>();
    const float* mp = m.data_ptr<float>();
    const float* kp = k.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, b, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        for (int64_t j = 0; j < n; ++j) {
          const float w = sp[i * n + j] * mp[i * n + j];
          if (w != 0.0f) axpy(w, kp + (i * n + j) * d, op + i * d, d);
        }
    });
    ctx->save_for_backward({s, m, k});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &s = saved[0], &m = saved[1], &k = saved[2];
    const torch::Tensor g = grads[0].contiguous();
    const int64_t b = k.size(0), n = k.size(1), d = k.size(2);
    torch::Tensor grad_scores = torch::empty({b, n}, k.options());
    torch::Tensor grad_keys = torch::empty_like(k);
    const float* sp = s.data_ptr<float>();
    const float* mp = m.data_ptr<float>();
    const float* kp = k.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* gs = grad_scores.data_ptr<float>();
    float* gk = grad_keys.data_ptr<float>();
    at::parallel_for(0, b, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        for (int64_t j = 0; j < n; ++j) {
          const int64_t r = i * n + j;
          gs[r] = mp[r] * dot(gp + i * d, kp + r * d, d);
          scale(sp[r] * mp[r], gp + i * d, gk + r * d, d);
        }
    });
    return {grad_scores, torch::Tensor(), grad_keys};
  }

 private:
  static void axpy(float a, const float* __restrict x, float* __restrict y, int64_t d) {
    for (int64_t i = 0; i < d; ++i) y[i] += a * x[i];
  }
  static void scale(float a, const float* __restrict x, float* __restrict y, int64_t d) {
    for (int64_t i = 0; i < d; ++i) y[i] = a * x[i];
  }
  static float dot(const float* __restrict x, const float* __restrict y, int64_t d) {
    float sum = 0;
    for (int64_t i = 0; i < d; ++i) sum += x[i] * y[i];
    return sum;
  }
};

}  // namespace

TargetAttentionImpl::TargetAttentionImpl(int64_t dim, const std::vector<int>& hidden,
                                         double dropout, bool allow_fused)
    : dim_(dim) {
  const int64_t width = hidden.empty() ? 1 : hidden.front();
  if (width <= 0) throw Error(ErrorKind::Config, "attention MLP hidden units must be positive");
  first_ = register_module("first", torch::nn::Linear(4 * dim, width));
  init_linear(first_);
  const bool one_hidden_layer = hidden.size() == 1 && dropout <= 0;
  fused_ = one_hidden_layer && allow_fused;
  if (one_hidden_layer) {
    output_ = register_module("output", torch::nn::Linear(width, 1));
    init_linear(output_);
  } else if (!hidden.empty()) {
    if (dropout > 0) dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
    rest_ = register_module(
        "rest", MLP(width, std::vector<int>(hidden.begin() + 1, hidden.end()), dropout, 1));
  }
}

torch::Tensor TargetAttentionImpl::forward(torch::Tensor query, torch::Tensor keys,
                                           torch::Tensor mask) {
  const int64_t b = keys.size(0), n = keys.size(1), d = dim_;
  // W [h, 4d] = [W_q | W_k | W_d | W_p] for the inputs [q, k, q - k, q * k].
  const torch::Tensor& w = first_->weight;
  torch::Tensor w_diff = w.narrow(1, 2 * d, d);
  torch::Tensor w_query = w.narrow(1, 0, d) + w_diff;                              // [h, d]
  torch::Tensor w_items = torch::cat({w.narrow(1, d, d) - w_diff, w.narrow(1, 3 * d, d)}, 1);
  torch::Tensor items = torch::cat({keys, keys * query.unsqueeze(1)}, -1).view({b * n, 2 * d});
  torch::Tensor query_part = torch::addmm(first_->bias, query, w_query.t());       // [B, h]
  torch::Tensor pre = items.mm(w_items.t());                                       // [B*N, h]
  torch::Tensor scores;
  if (fused_ && b > 0 && n > 0) {
    scores = AttentionScores::apply(pre, query_part, output_->weight, output_->bias);
  } else {
    torch::Tensor h = pre.view({b, n, -1}).add(query_part.unsqueeze(1));
    if (rest_) {
      h = torch::relu(h);
      if (dropout_) h = dropout_(h);
      h = rest_(h);
    } else if (output_) {
      h = output_(torch::relu(h));
    }
    scores = h;
  }
  return MaskedWeightedSum::apply(scores.view({b, n}), mask, keys);        // [B, d]
}

}  // namespace liber::ctr
