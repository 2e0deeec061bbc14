// The attention fuse layer; see src/include/liber/uif/fuse_layer.h.
#include "liber/uif/fuse_layer.h"

#include <cmath>

#include <fmt/format.h>

#include "liber/ctr/layers.h"
#include "liber/error.h"

namespace liber::uif {

torch::Tensor reduce_vectors(const torch::Tensor& vectors, int64_t k) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = vectors.to(torch::kDouble);
  const int64_t n = x.size(0), w = x.size(1);
  if (k <= 0 || k >= w) return vectors.to(torch::kFloat).contiguous().clone();  // owns its memory
  k = std::min<int64_t>(k, std::max<int64_t>(n - 1, 1));
  x = x - x.mean(0, /*keepdim=*/true);
  // Eigen-decomposition of the w x w covariance (w is the encoder width, ~1e3), in double
  // so the result does not depend on summation order.
  torch::Tensor cov = x.t().mm(x) / static_cast<double>(std::max<int64_t>(n - 1, 1));
  auto [values, vectors_] = torch::linalg::eigh(cov, "L");  // ascending
  torch::Tensor top = vectors_.narrow(1, w - k, k).flip({1});
  torch::Tensor scale = values.narrow(0, w - k, k).flip({0}).clamp_min(1e-12).sqrt();
  // Eigenvectors are defined up to sign: fix it (largest |component| positive) so equal
  // inputs give equal tables across runs and machines.
  torch::Tensor idx = top.abs().argmax(0);
  torch::Tensor sign = top.gather(0, idx.unsqueeze(0)).sign().clamp_min(0) * 2 - 1;
  return (x.mm(top * sign) / scale).to(torch::kFloat).contiguous();
}

FuseLayerImpl::FuseLayerImpl(const InterestInput& in, int64_t query_dim)
    : attention_(in.fusion == "attention"),
      slots_(in.slots),
      hidden_(in.hidden),
      fused_dim_(in.fused_dim) {
  if (in.width <= 0 || !in.vectors)
    throw Error(ErrorKind::InvalidInput, "fuse layer: no interest vectors attached");
  if (in.fusion != "attention" && in.fusion != "mean")
    throw Error(ErrorKind::Config, fmt::format("unknown fusion '{}' (attention | mean)", in.fusion));
  if (in.slots <= 0 || in.hidden <= 0 || in.fused_dim <= 0)
    throw Error(ErrorKind::Config, "fuse layer: slots, hidden and fused_dim must be positive");
  const auto rows = static_cast<int64_t>(in.vectors->size()) / in.width;
  if (rows * in.width != static_cast<int64_t>(in.vectors->size()))
    throw Error(ErrorKind::InvalidInput, "fuse layer: vector table size is not rows x width");
  torch::Tensor raw =
      torch::from_blob(const_cast<float*>(in.vectors->data()), {rows, in.width}, torch::kFloat);
  table = register_buffer("table", reduce_vectors(raw, in.reduced_dim));
  const int64_t r = table.size(1);

  input_ = register_module("input", torch::nn::Linear(r, hidden_));
  ctr::init_linear(input_);
  slot_embedding_ = register_parameter("slot_embedding", torch::zeros({slots_, hidden_}));
  if (attention_) {
    query_ = register_module("query", torch::nn::Linear(hidden_, hidden_));
    key_ = register_module("key", torch::nn::Linear(hidden_, hidden_));
    value_ = register_module("value", torch::nn::Linear(hidden_, hidden_));
    target_ = register_module("target", torch::nn::Linear(query_dim, hidden_));
    for (auto* l : {&query_, &key_, &value_, &target_}) ctr::init_linear(*l);
  }
  output_ = register_module("output", torch::nn::Linear(hidden_, fused_dim_));
  ctr::init_linear(output_);
  no_history_ = register_parameter("no_history", torch::zeros({fused_dim_}));
}

torch::Tensor FuseLayerImpl::forward(const torch::Tensor& rows, const torch::Tensor& query) {
  const int64_t b = rows.size(0);
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) == slots_, "fuse layer: rows must be [B, slots]");
  torch::Tensor mask = rows.ge(0);                                   // [B, M]
  torch::Tensor maskf = mask.to(torch::kFloat).unsqueeze(-1);        // [B, M, 1]
  torch::Tensor ids = rows.clamp_min(0).reshape(-1);
  // A slot's input is x = relu(input(row)) + slot_embedding[slot]. Every linear map of x
  // splits into a per-row part and a per-slot part, so the maps run once per table row
  // (P rows) instead of once per sample slot (B x M), and each sample only gathers.
  torch::Tensor a = torch::relu(input_(table));                      // [P, h]
  torch::Tensor count = maskf.sum(1);                                // [B, 1]
  torch::Tensor pooled;
  if (attention_) {
    auto no_bias = [](const torch::nn::Linear& l, const torch::Tensor& x) {
      return torch::matmul(x, l->weight.t());
    };
    torch::Tensor per_row = torch::cat({a, query_(a), key_(a), value_(a)}, 1);   // [P, 4h]
    torch::Tensor per_slot = torch::cat({slot_embedding_, no_bias(query_, slot_embedding_),
                                         no_bias(key_, slot_embedding_),
                                         no_bias(value_, slot_embedding_)}, 1);  // [M, 4h]
    torch::Tensor g = ctr::gather_rows(per_row, ids).view({b, slots_, 4 * hidden_}) + per_slot;
    auto part = [&](int i) { return g.narrow(2, i * hidden_, hidden_); };
    torch::Tensor x = part(0) * maskf;                                 // [B, M, h]
    const double scale = 1.0 / std::sqrt(static_cast<double>(hidden_));
    torch::Tensor blocked = mask.logical_not().unsqueeze(1);           // [B, 1, M] keys
    torch::Tensor s = torch::bmm(part(1), part(2).transpose(1, 2)).mul(scale);
    torch::Tensor attn = torch::softmax(s.masked_fill(blocked, -1e9), -1);  // [B, M, M]
    torch::Tensor y = (x + torch::bmm(attn, part(3))) * maskf;
    torch::Tensor q = target_(query).unsqueeze(-1);                    // [B, h, 1]
    torch::Tensor t = torch::bmm(y, q).squeeze(-1).mul(scale);         // [B, M]
    torch::Tensor w = torch::softmax(t.masked_fill(mask.logical_not(), -1e9), -1);
    pooled = torch::bmm(w.unsqueeze(1), y).squeeze(1);                 // [B, h]
  } else {
    torch::Tensor x = (ctr::gather_rows(a, ids).view({b, slots_, hidden_}) + slot_embedding_) * maskf;
    pooled = x.sum(1) / count.clamp_min(1.0);
  }
  torch::Tensor out = output_(pooled);                                 // [B, fused]
  torch::Tensor empty = count.eq(0).to(torch::kFloat);                 // [B, 1]
  return out * (1 - empty) + no_history_.unsqueeze(0) * empty;
}

}  // namespace liber::uif
