// The field-interaction layers of FiBiNet (squeeze-excitation, bilinear interaction) and
// FiGNN (field graph, attentional score).
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "liber/ctr/layers.h"
#include "liber/error.h"

namespace liber::ctr {

namespace {

torch::nn::Linear linear_without_bias(int64_t in, int64_t out) {
  torch::nn::Linear linear(torch::nn::LinearOptions(in, out).bias(false));
  init_linear(linear);
  return linear;
}

// x [B, F, d], weights [F, d, d] -> [B, F, d] with out[b, f] = weights[f] x[b, f]: one bmm
// over fields (torch::matmul would broadcast the weights to every sample).
torch::Tensor per_field_matmul(const torch::Tensor& weights, const torch::Tensor& x) {
  return torch::bmm(x.transpose(0, 1), weights.transpose(1, 2)).transpose(0, 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// SqueezeExcitation

SqueezeExcitationImpl::SqueezeExcitationImpl(int64_t fields, int reduction) {
  if (reduction <= 0) throw Error(ErrorKind::Config, "senet_reduction must be positive");
  const int64_t reduced = std::max<int64_t>(1, fields / reduction);
  squeeze_ = register_module("squeeze", linear_without_bias(fields, reduced));
  excite_ = register_module("excite", linear_without_bias(reduced, fields));
}

torch::Tensor SqueezeExcitationImpl::forward(const torch::Tensor& fields) {
  torch::Tensor weight = torch::relu(excite_(torch::relu(squeeze_(fields.mean(-1)))));  // [B, F]
  return fields * weight.unsqueeze(-1);
}

// ---------------------------------------------------------------------------------------
// BilinearInteraction

BilinearInteractionImpl::BilinearInteractionImpl(int64_t fields, int64_t dim) {
  if (fields < 2) throw Error(ErrorKind::Config, "bilinear interaction needs two fields");
  torch::Tensor pairs = torch::triu_indices(fields, fields, 1);  // [2, P], i < j
  left_ = pairs[0].contiguous();
  right_ = pairs[1].contiguous();
  weight_ = register_parameter("weight", torch::empty({left_.size(0), dim, dim}));
  torch::nn::init::xavier_normal_(weight_);
}

torch::Tensor BilinearInteractionImpl::forward(const torch::Tensor& fields) {
  torch::Tensor left = fields.index_select(1, left_);   // [B, P, d]
  torch::Tensor right = fields.index_select(1, right_);
  return torch::bmm(left.transpose(0, 1), weight_).transpose(0, 1) * right;
}

// ---------------------------------------------------------------------------------------
// FieldGraph

FieldGraphImpl::FieldGraphImpl(int64_t fields, int64_t dim, int steps) : fields_(fields), dim_(dim) {
  if (steps <= 0) throw Error(ErrorKind::Config, "graph_steps must be positive");
  if (fields < 2) throw Error(ErrorKind::Config, "a field graph needs two fields");
  // One Linear(2d, 1) as in the paper; its two halves score the source and the target.
  edge_ = register_module("edge", linear_without_bias(2 * dim, 1));
  for (int s = 0; s < steps; ++s) {
    const std::string k = std::to_string(s);
    w_in_.push_back(register_parameter("w_in" + k, torch::empty({fields, dim, dim})));
    w_out_.push_back(register_parameter("w_out" + k, torch::empty({fields, dim, dim})));
    bias_.push_back(register_parameter("bias" + k, torch::zeros({dim})));
    torch::nn::init::xavier_normal_(w_in_.back());
    torch::nn::init::xavier_normal_(w_out_.back());
  }
  gru_ = register_module("gru", torch::nn::GRUCell(dim, dim));
}

torch::Tensor FieldGraphImpl::forward(const torch::Tensor& fields) {
  const int64_t batch = fields.size(0);
  // w . [e_i, e_j] = w_s . e_i + w_t . e_j: [B, F, 2] instead of [B, F * F, 2d].
  torch::Tensor halves = torch::matmul(fields, edge_->weight.view({2, dim_}).t());
  torch::Tensor logits = torch::leaky_relu(halves.select(2, 0).unsqueeze(2) +
                                           halves.select(2, 1).unsqueeze(1), 0.01);
  torch::Tensor self = torch::eye(fields_, torch::kBool);
  torch::Tensor graph = torch::softmax(
      logits.masked_fill(self, -std::numeric_limits<float>::infinity()), -1);  // [B, F, F]
  torch::Tensor h = fields;
  for (std::size_t s = 0; s < w_in_.size(); ++s) {
    torch::Tensor message = torch::bmm(graph, per_field_matmul(w_out_[s], h));
    torch::Tensor a = per_field_matmul(w_in_[s], message) + bias_[s];
    h = gru_(a.reshape({batch * fields_, dim_}), h.reshape({batch * fields_, dim_}))
            .view({batch, fields_, dim_}) +
        fields;
  }
  return h;
}

// ---------------------------------------------------------------------------------------
// AttentionalScore

AttentionalScoreImpl::AttentionalScoreImpl(int64_t fields, int64_t dim) {
  score_ = register_module("score", linear_without_bias(dim, 1));
  gate_ = register_module("gate", linear_without_bias(fields * dim, fields));
}

torch::Tensor AttentionalScoreImpl::forward(const torch::Tensor& states) {
  torch::Tensor score = score_(states).squeeze(-1);              // [B, F]
  torch::Tensor weight = torch::sigmoid(gate_(states.flatten(1)));  // [B, F]
  return (weight * score).sum(1);
}

}  // namespace liber::ctr
