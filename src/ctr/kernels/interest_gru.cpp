// DIEN's GRU. One input projection for all positions (a single GEMM); then the whole
// recurrence as one fused kernel with a hand-written backward, each sample's steps in one
// loop. As libtorch ops a step is a [B, d] x [d, 3d] GEMM and ~12 small kernels forward
// (~20 backward): with d = 16 the GEMMs are too small for OpenBLAS's threads, which spend
// more time handing them over than computing (docs/results.md has the measurements).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "liber/ctr/layers.h"
#include "liber/ctr/vector_ops.h"  // LIBER_ISA_CLONES

namespace liber::ctr {

namespace {

// exp(x) as Cephes' expf: 2^k * a degree-6 polynomial of the remainder, relative error
// ~1e-7 on [-87, 88]. Plain arithmetic, so the gate loops vectorize; libm's
// expf / tanhf calls were most of the kernel's time.
inline float exp_of(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // k = round(x / ln 2) by adding and removing 1.5 * 2^23 (floor() is a call here, which
  // keeps the loop from vectorizing).
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(k) + 127) << 23);
}

struct GruShape {
  int64_t b, n, d;
  int64_t plane() const { return n * b * d; }  // one of the five saved quantities
};

// Samples [begin, end) of the forward recurrence over positions N-1 .. 0 (most recent first
// in storage: the oldest step first):
//   [h_u, h_r, h_n] = W h + b, u = sigmoid(x_u + h_u) * w_p, r = sigmoid(x_r + h_r),
//   n = tanh(x_n + r * h_n), h' = h + u * (n - h).
// Saves per position and sample: the state before the step, sigmoid(x_u + h_u), r, n, h_n.
LIBER_ISA_CLONES void gru_forward(const GruShape& z, const float* x_gates, const float* step_weight,
                                  const float* weight_t, const float* bias, float* saved,
                                  float* out, bool all_states, int64_t begin, int64_t end) {
  const int64_t n = z.n, d = z.d, plane = z.plane();
  // Plain loops over private buffers (restrict: nothing aliases), which GCC vectorizes.
  std::vector<float> buffers(static_cast<std::size_t>(7 * d));
  float* __restrict h = buffers.data();
  float* __restrict g = h + d;          // [3d] W h + b
  float* __restrict gate = g + 3 * d;   // [2d] sigmoid(x_u + h_u), r
  float* __restrict cand = gate + 2 * d;  // [d]
  for (int64_t s = begin; s < end; ++s) {
    std::fill(h, h + d, 0.0f);
    for (int64_t p = n - 1; p >= 0; --p) {
      const float* __restrict x = x_gates + (s * n + p) * 3 * d;
      // g = b + W h as a sum of W's columns (rows of W^T): vectorizes, a dot does not.
      for (int64_t j = 0; j < 3 * d; ++j) g[j] = bias[j];
      for (int64_t k = 0; k < d; ++k) {
        const float* __restrict column = weight_t + k * 3 * d;
        const float v = h[k];
        for (int64_t j = 0; j < 3 * d; ++j) g[j] += v * column[j];
      }
      for (int64_t j = 0; j < 2 * d; ++j) gate[j] = 1.0f / (1.0f + exp_of(-(x[j] + g[j])));
      for (int64_t c = 0; c < d; ++c)
        cand[c] = 2.0f / (1.0f + exp_of(-2.0f * (x[2 * d + c] + gate[d + c] * g[2 * d + c]))) - 1.0f;
      float* __restrict cell = saved + (p * z.b + s) * d;
      std::copy(h, h + d, cell);
      std::copy(gate, gate + d, cell + plane);
      std::copy(gate + d, gate + 2 * d, cell + 2 * plane);
      std::copy(cand, cand + d, cell + 3 * plane);
      std::copy(g + 2 * d, g + 3 * d, cell + 4 * plane);
      const float scale = step_weight[s * n + p];
      for (int64_t c = 0; c < d; ++c) h[c] += gate[c] * scale * (cand[c] - h[c]);
      if (all_states) std::copy(h, h + d, out + (s * n + p) * d);
    }
    if (!all_states) std::copy(h, h + d, out + s * d);
  }
}

// Samples [begin, end) of the backward pass, positions 0 .. N-1 (the forward's last step
// first). out_grad: [B, N, d] (all_states) or [B, d]. Writes the gradients of the input
// gates [B, N, 3d], of the step weights [B, N] and of the hidden gates per position
// [N, B, 3d] (the hidden projection's parameters are summed from these afterwards).
LIBER_ISA_CLONES void gru_backward(const GruShape& z, const float* step_weight, const float* weight,
                                   const float* saved, const float* out_grad, bool all_states,
                                   float* dx_gates, float* dstep_weight, float* dh_gates,
                                   int64_t begin, int64_t end) {
  const int64_t n = z.n, d = z.d, plane = z.plane();
  std::vector<float> buffer(static_cast<std::size_t>(d));
  float* __restrict dh = buffer.data();
  for (int64_t s = begin; s < end; ++s) {
    if (all_states) std::fill(dh, dh + d, 0.0f);
    else std::copy(out_grad + s * d, out_grad + (s + 1) * d, dh);
    for (int64_t p = 0; p < n; ++p) {
      const float scale = step_weight[s * n + p];
      const float* cell = saved + (p * z.b + s) * d;
      float* dx = dx_gates + (s * n + p) * 3 * d;
      float* dg = dh_gates + (p * z.b + s) * 3 * d;
      if (all_states)
        for (int64_t c = 0; c < d; ++c) dh[c] += out_grad[(s * n + p) * d + c];
      float dscale = 0;
      for (int64_t c = 0; c < d; ++c) {
        const float before = cell[c], u = cell[plane + c], r = cell[2 * plane + c];
        const float cand = cell[3 * plane + c], hidden_n = cell[4 * plane + c], g = dh[c];
        const float d_u = g * (cand - before);
        dscale += d_u * u;
        const float d_pre_u = d_u * scale * u * (1 - u);
        const float d_pre_n = g * u * scale * (1 - cand * cand);
        const float d_pre_r = d_pre_n * hidden_n * r * (1 - r);
        dx[c] = dg[c] = d_pre_u;
        dx[d + c] = dg[d + c] = d_pre_r;
        dx[2 * d + c] = d_pre_n;
        dg[2 * d + c] = d_pre_n * r;
        dh[c] = g * (1 - u * scale);
      }
      // + W^T dg: through the hidden projection to the previous state.
      for (int64_t j = 0; j < 3 * d; ++j) {
        const float* __restrict row = weight + j * d;
        const float v = dg[j];
        for (int64_t c = 0; c < d; ++c) dh[c] += v * row[c];
      }
      dstep_weight[s * n + p] = dscale;
    }
  }
}

class GruSteps : public torch::autograd::Function<GruSteps> {
 public:
  // gates_x [B, N, 3d], step_weight [B, N], weight [3d, d], bias [3d].
  // -> states [B, N, d] (all_states) or the final state [B, d].
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gates_x,
                               const torch::Tensor& step_weight, const torch::Tensor& weight,
                               const torch::Tensor& bias, bool all_states) {
    const torch::Tensor gx = gates_x.contiguous(), w = step_weight.contiguous();
    const torch::Tensor wh = weight.contiguous(), wht = weight.t().contiguous();
    const torch::Tensor bh = bias.contiguous();
    const GruShape z{gx.size(0), gx.size(1), wh.size(1)};
    torch::Tensor saved = torch::empty({5, z.n, z.b, z.d}, gx.options());
    torch::Tensor out = all_states ? torch::empty({z.b, z.n, z.d}, gx.options())
                                   : torch::empty({z.b, z.d}, gx.options());
    at::parallel_for(0, z.b, 16, [&](int64_t begin, int64_t end) {
      gru_forward(z, gx.data_ptr<float>(), w.data_ptr<float>(), wht.data_ptr<float>(),
                  bh.data_ptr<float>(), saved.data_ptr<float>(), out.data_ptr<float>(), all_states,
                  begin, end);
    });
    ctx->save_for_backward({w, wh, saved});
    ctx->saved_data["all_states"] = all_states;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto kept = ctx->get_saved_variables();
    const torch::Tensor &w = kept[0], &wh = kept[1], &saved = kept[2];
    const bool all_states = ctx->saved_data["all_states"].toBool();
    const GruShape z{saved.size(2), saved.size(1), saved.size(3)};
    const torch::Tensor out_grad = grads[0].contiguous();
    torch::Tensor dgx = torch::empty({z.b, z.n, 3 * z.d}, out_grad.options());
    torch::Tensor dw = torch::empty({z.b, z.n}, out_grad.options());
    torch::Tensor dgh = torch::empty({z.n, z.b, 3 * z.d}, out_grad.options());
    at::parallel_for(0, z.b, 16, [&](int64_t begin, int64_t end) {
      gru_backward(z, w.data_ptr<float>(), wh.data_ptr<float>(), saved.data_ptr<float>(),
                   out_grad.data_ptr<float>(), all_states, dgx.data_ptr<float>(),
                   dw.data_ptr<float>(), dgh.data_ptr<float>(), begin, end);
    });
    // The hidden projection's parameters, over all positions and samples at once.
    const torch::Tensor dgh_all = dgh.view({z.n * z.b, 3 * z.d});
    const torch::Tensor dweight = dgh_all.t().mm(saved[0].view({z.n * z.b, z.d}));
    const torch::Tensor dbias = dgh_all.sum(0);
    return {dgx, dw, dweight, dbias, torch::Tensor()};
  }
};

}  // namespace

InterestGruImpl::InterestGruImpl(int64_t dim, bool allow_fused) : dim_(dim), fused_(allow_fused) {
  input_ = register_module("input", torch::nn::Linear(dim, 3 * dim));
  hidden_ = register_module("hidden", torch::nn::Linear(dim, 3 * dim));
  init_linear(input_);
  init_linear(hidden_);
}

torch::Tensor InterestGruImpl::forward(const torch::Tensor& keys, const torch::Tensor& mask) {
  return run(keys, mask, /*all_states=*/true);
}

torch::Tensor InterestGruImpl::final_state(const torch::Tensor& inputs,
                                           const torch::Tensor& step_weight) {
  return run(inputs, step_weight, /*all_states=*/false);
}

torch::Tensor InterestGruImpl::run(const torch::Tensor& inputs, const torch::Tensor& step_weight,
                                   bool all_states) {
  const int64_t positions = inputs.size(1);
  torch::Tensor gates_x = input_(inputs);  // [B, N, 3d]
  if (fused_ && inputs.size(0) > 0 && positions > 0 && inputs.scalar_type() == torch::kFloat)
    return GruSteps::apply(gates_x, step_weight.to(torch::kFloat), hidden_->weight, hidden_->bias,
                           all_states);
  torch::Tensor h = torch::zeros({inputs.size(0), dim_}, inputs.options());
  std::vector<torch::Tensor> states(static_cast<std::size_t>(all_states ? positions : 0));
  // Most recent first in storage: the oldest item is at the highest position.
  for (int64_t p = positions - 1; p >= 0; --p) {
    torch::Tensor gx = gates_x.select(1, p);
    torch::Tensor gh = hidden_(h);
    torch::Tensor ur = torch::sigmoid(gx.narrow(1, 0, 2 * dim_) + gh.narrow(1, 0, 2 * dim_));
    torch::Tensor update = ur.narrow(1, 0, dim_) * step_weight.select(1, p).unsqueeze(1);
    torch::Tensor candidate = torch::tanh(gx.narrow(1, 2 * dim_, dim_) +
                                          ur.narrow(1, dim_, dim_) * gh.narrow(1, 2 * dim_, dim_));
    h = h + update * (candidate - h);
    if (all_states) states[static_cast<std::size_t>(p)] = h;
  }
  return all_states ? torch::stack(states, 1) : h;
}

}  // namespace liber::ctr
