// The shared layers every backbone composes: field embeddings with the side-input plug,
// the MLP, DCNv2's cross network and the FM term. Kernels of their own are in kernels/.
#include "liber/ctr/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "liber/ctr/vector_ops.h"
#include "liber/error.h"

namespace liber::ctr {

void init_linear(torch::nn::Linear& linear) {
  torch::nn::init::xavier_normal_(linear->weight);
  if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
}

// ---------------------------------------------------------------------------------------
// FeatureEmbedding

FeatureEmbeddingImpl::FeatureEmbeddingImpl(const FeatureSchema& schema, int64_t dim,
                                           bool pool_history)
    : dim_(dim),
      num_sparse_(static_cast<int64_t>(schema.sparse.size())),
      history_field_(schema.history_field),
      target_field_(schema.target_item_field),
      pool_history_(pool_history) {
  if (dim <= 0) throw Error(ErrorKind::Config, "embedding dimension must be positive");
  if (schema.sparse.empty())
    throw Error(ErrorKind::InvalidInput, "feature schema has no sparse field");
  if (target_field_ >= num_sparse_ || history_field_ >= static_cast<int>(schema.sequences.size()))
    throw Error(ErrorKind::InvalidInput, "feature schema: target/history field out of range");

  // Row blocks of the fused table: sparse fields first, then unshared sequence fields.
  int64_t rows = 0;
  std::vector<int64_t> sparse_offsets;
  for (const SparseField& f : schema.sparse) {
    if (f.vocab <= 0)
      throw Error(ErrorKind::InvalidInput, "sparse field '" + f.name + "' has an empty vocabulary");
    sparse_offsets.push_back(rows);
    rows += f.vocab;
  }
  std::vector<int64_t> sequence_offsets;
  for (const SequenceField& f : schema.sequences) {
    if (f.length <= 0)
      throw Error(ErrorKind::InvalidInput, "sequence field '" + f.name + "' has no length");
    int64_t offset = rows;
    if (!f.shares_embedding_with.empty()) {
      int shared = -1;
      for (std::size_t i = 0; i < schema.sparse.size(); ++i)
        if (schema.sparse[i].name == f.shares_embedding_with) shared = static_cast<int>(i);
      if (shared < 0)
        throw Error(ErrorKind::InvalidInput, "sequence field '" + f.name +
                                                 "' shares the embedding of unknown field '" +
                                                 f.shares_embedding_with + "'");
      if (f.vocab > schema.sparse[shared].vocab)
        throw Error(ErrorKind::InvalidInput, "sequence field '" + f.name +
                                                 "' has a larger vocabulary than '" +
                                                 f.shares_embedding_with + "'");
      offset = sparse_offsets[shared];
    } else {
      if (f.vocab <= 0)
        throw Error(ErrorKind::InvalidInput,
                    "sequence field '" + f.name + "' has an empty vocabulary");
      rows += f.vocab;
    }
    sequence_slices_.emplace_back(sequence_width_, f.length);
    sequence_width_ += f.length;
    sequence_offsets.insert(sequence_offsets.end(), f.length, offset);
  }
  sparse_offsets_ = torch::tensor(sparse_offsets, torch::kLong);
  sequence_offsets_ = torch::tensor(sequence_offsets, torch::kLong);

  // FuxiCTR's default embedding initializer: normal with std 1e-4.
  table = register_parameter("table", torch::empty({rows, dim}).normal_(0.0, 1e-4));

  if (schema.side.enabled()) {
    if (!schema.side.factory)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("side input '{}' has no module factory", schema.side.name));
    if (schema.side.factory->needs_target() && target_field_ < 0)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("side input '{}' needs a target item field (its query)",
                              schema.side.name));
    side = register_module("side", schema.side.factory->make(dim));
    side_projection = register_module("side_projection", torch::nn::Linear(side->output_dim(), dim));
    init_linear(side_projection);
  }

  num_fields_ = num_sparse_ + static_cast<int64_t>(schema.sequences.size()) + (side ? 1 : 0);
  if (!pool_history_ && history_field_ >= 0) --num_fields_;
}

torch::Tensor FeatureEmbeddingImpl::sparse_ids(const Batch& batch) const {
  return batch.sparse + sparse_offsets_;
}

torch::Tensor FeatureEmbeddingImpl::sequence_ids(const Batch& batch) const {
  return batch.sequences + sequence_offsets_;
}

FieldEmbeddings FeatureEmbeddingImpl::forward(const Batch& batch) {
  const int64_t b = batch.size();
  FieldEmbeddings out;
  std::vector<torch::Tensor> parts;

  torch::Tensor sparse = gather_rows(table, sparse_ids(batch).view(-1)).view({b, num_sparse_, dim_});
  parts.push_back(sparse);
  if (target_field_ >= 0) out.target = sparse.select(1, target_field_);

  if (sequence_width_ > 0) {
    torch::Tensor mask = batch.sequences.ne(0).to(torch::kFloat);  // [B, L]
    torch::Tensor seq = gather_rows(table, sequence_ids(batch).view(-1))
                            .view({b, sequence_width_, dim_})
                            .mul(mask.unsqueeze(-1));
    for (std::size_t q = 0; q < sequence_slices_.size(); ++q) {
      auto [start, length] = sequence_slices_[q];
      torch::Tensor items = seq.narrow(1, start, length);
      torch::Tensor present = mask.narrow(1, start, length);
      if (static_cast<int>(q) == history_field_) {
        out.history = items;
        out.history_mask = present;
        if (!pool_history_) continue;
      }
      torch::Tensor count = present.sum(1, /*keepdim=*/true).clamp_min(1.0);  // [B, 1]
      parts.push_back(items.sum(1).div(count).unsqueeze(1));
    }
  }

  if (side) {
    if (!batch.side.defined())
      throw Error(ErrorKind::InvalidInput, "the schema has a side input but the batch has none");
    out.side = side->forward(batch, out.target);
    parts.push_back(side_projection(out.side).unsqueeze(1));
  }
  out.fields = parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
  return out;
}

torch::Tensor FeatureEmbeddingImpl::l2_penalty(const Batch& batch) {
  torch::Tensor ids = sparse_ids(batch).view(-1);
  if (sequence_width_ > 0) {
    torch::Tensor seq = sequence_ids(batch).view(-1).masked_select(batch.sequences.view(-1).ne(0));
    ids = torch::cat({ids, seq});
  }
  torch::Tensor rows = std::get<0>(torch::_unique(ids, /*sorted=*/false));
  return gather_rows(table, rows).pow(2).sum();
}

// ---------------------------------------------------------------------------------------
// MLP

MLPImpl::MLPImpl(int64_t input_dim, const std::vector<int>& hidden, double dropout,
                 int64_t output_dim) {
  layers_ = register_module("layers", torch::nn::Sequential());
  int64_t width = input_dim;
  for (int units : hidden) {
    if (units <= 0) throw Error(ErrorKind::Config, "MLP hidden units must be positive");
    torch::nn::Linear linear(width, units);
    init_linear(linear);
    layers_->push_back(linear);
    layers_->push_back(torch::nn::ReLU());
    if (dropout > 0) layers_->push_back(torch::nn::Dropout(dropout));
    width = units;
  }
  if (output_dim > 0) {
    torch::nn::Linear linear(width, output_dim);
    init_linear(linear);
    layers_->push_back(linear);
    width = output_dim;
  }
  output_dim_ = width;
}

torch::Tensor MLPImpl::forward(torch::Tensor x) {
  return layers_->is_empty() ? x : layers_->forward(x);
}

// ---------------------------------------------------------------------------------------
// CrossNetwork

CrossNetworkImpl::CrossNetworkImpl(int64_t dim, int layers) {
  if (layers < 0) throw Error(ErrorKind::Config, "cross_layers must be >= 0");
  for (int i = 0; i < layers; ++i) {
    torch::nn::Linear linear(dim, dim);
    init_linear(linear);
    layers_.push_back(register_module("cross" + std::to_string(i), linear));
  }
}

torch::Tensor CrossNetworkImpl::forward(torch::Tensor x0) {
  torch::Tensor x = x0;
  for (auto& layer : layers_) x = x0 * layer(x) + x;
  return x;
}

// ---------------------------------------------------------------------------------------
// FirstOrder

namespace {
FeatureSchema without_side(FeatureSchema schema) {
  schema.side = {};
  return schema;
}
}  // namespace

FirstOrder::FirstOrder(torch::nn::Module& owner, const FeatureSchema& schema, int64_t side_dim) {
  weights_ = owner.register_module("linear", FeatureEmbedding(without_side(schema), 1));
  if (side_dim > 0) {
    side_ = owner.register_module("side_linear", torch::nn::Linear(side_dim, 1));
    init_linear(side_);
  }
  bias_ = owner.register_parameter("bias", torch::zeros({1}));
}

torch::Tensor FirstOrder::operator()(const Batch& batch, const torch::Tensor& side) {
  torch::Tensor out = weights_(batch).fields.sum({1, 2});  // [B]
  if (side_) out = out + side_(side).squeeze(-1);
  return out + bias_;
}

// ---------------------------------------------------------------------------------------
// FM

torch::Tensor fm_interaction(const torch::Tensor& fields) {
  torch::Tensor sum = fields.sum(1);                 // [B, d]
  torch::Tensor sum_of_squares = fields.pow(2).sum(1);
  return (sum.pow(2) - sum_of_squares).sum(-1).mul(0.5);
}

}  // namespace liber::ctr
