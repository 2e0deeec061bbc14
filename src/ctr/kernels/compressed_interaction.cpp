// xDeepFM's compressed interaction network, its Hadamard products as one fused kernel.
#include <string>
#include <vector>

#include "liber/ctr/layers.h"
#include "liber/ctr/vector_ops.h"  // LIBER_ISA_CLONES
#include "liber/error.h"

namespace liber::ctr {

namespace {

// Rows [begin, end) of P[r, i * F + j] = x[r, i] * x0[r, j] (x [R, H], x0 [R, F]).
LIBER_ISA_CLONES void products(const float* x, const float* x0, float* p, int64_t h, int64_t f,
                               int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const float* __restrict xr = x + r * h;
    const float* __restrict x0r = x0 + r * f;
    float* __restrict pr = p + r * h * f;
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < f; ++j) pr[i * f + j] = xr[i] * x0r[j];
  }
}

// Their gradients from dP in one read: dx[r, i] = sum_j dP[r, i, j] x0[r, j],
// dx0[r, j] = sum_i dP[r, i, j] x[r, i].
LIBER_ISA_CLONES void products_backward(const float* x, const float* x0, const float* dp,
                                        float* dx, float* dx0, int64_t h, int64_t f,
                                        int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const float* __restrict xr = x + r * h;
    const float* __restrict x0r = x0 + r * f;
    const float* __restrict dpr = dp + r * h * f;
    float* __restrict dxr = dx + r * h;
    float* __restrict dx0r = dx0 + r * f;
    for (int64_t j = 0; j < f; ++j) dx0r[j] = 0;
    for (int64_t i = 0; i < h; ++i) {
      float sum = 0;
      for (int64_t j = 0; j < f; ++j) {
        sum += dpr[i * f + j] * x0r[j];
        dx0r[j] += dpr[i * f + j] * xr[i];
      }
      dxr[i] = sum;
    }
  }
}

// x [R, H], x0 [R, F] -> [R, H * F]. As libtorch ops (a broadcast multiply) its backward is
// two multiplies into [R, H, F] temporaries and two strided reductions.
class HadamardProducts : public torch::autograd::Function<HadamardProducts> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& x0) {
    const torch::Tensor a = x.contiguous(), b = x0.contiguous();
    const int64_t rows = a.size(0), h = a.size(1), f = b.size(1);
    torch::Tensor p = torch::empty({rows, h * f}, a.options());
    at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
      products(a.data_ptr<float>(), b.data_ptr<float>(), p.data_ptr<float>(), h, f, begin, end);
    });
    ctx->save_for_backward({a, b});
    return p;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &a = saved[0], &b = saved[1];
    const torch::Tensor dp = grads[0].contiguous();
    const int64_t rows = a.size(0), h = a.size(1), f = b.size(1);
    torch::Tensor dx = torch::empty_like(a), dx0 = torch::empty_like(b);
    at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
      products_backward(a.data_ptr<float>(), b.data_ptr<float>(), dp.data_ptr<float>(),
                        dx.data_ptr<float>(), dx0.data_ptr<float>(), h, f, begin, end);
    });
    return {dx, dx0};
  }
};

}  // namespace

CompressedInteractionImpl::CompressedInteractionImpl(int64_t fields, const std::vector<int>& layers,
                                                     bool allow_fused)
    : fused_(allow_fused) {
  if (layers.empty()) throw Error(ErrorKind::Config, "cin_layers: at least one layer");
  int64_t previous = fields, pooled = 0;
  for (std::size_t k = 0; k < layers.size(); ++k) {
    if (layers[k] <= 0) throw Error(ErrorKind::Config, "cin_layers must be positive");
    torch::nn::Linear linear(previous * fields, layers[k]);
    init_linear(linear);
    layers_.push_back(register_module("cin" + std::to_string(k), linear));
    previous = layers[k];
    pooled += layers[k];
  }
  output_ = register_module("output", torch::nn::Linear(pooled, 1));
  init_linear(output_);
}

torch::Tensor CompressedInteractionImpl::forward(const torch::Tensor& x0) {
  // In [B, d, maps] layout the channel map is one Linear on the last axis: products
  // [B, d, H, F] (channel i * F + j) -> [B, d, H * F] -> [B, d, H_k].
  const int64_t b = x0.size(0), f = x0.size(1), d = x0.size(2);
  std::vector<torch::Tensor> pooled;
  if (fused_ && x0.scalar_type() == torch::kFloat && b > 0) {
    const torch::Tensor base = x0.transpose(1, 2).reshape({b * d, f});  // [B * d, F]
    torch::Tensor x = base;
    for (auto& layer : layers_) {
      x = layer(HadamardProducts::apply(x, base));  // [B * d, H_k]
      pooled.push_back(x.view({b, d, -1}).sum(1));  // [B, H_k]
    }
  } else {
    const torch::Tensor base = x0.transpose(1, 2);  // [B, d, F]
    torch::Tensor x = base;
    for (auto& layer : layers_) {
      x = layer((x.unsqueeze(3) * base.unsqueeze(2)).view({b, d, -1}));
      pooled.push_back(x.sum(1));
    }
  }
  return output_(torch::cat(pooled, 1)).squeeze(-1);
}

}  // namespace liber::ctr
