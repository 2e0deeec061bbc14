#include "liber/ctr/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "liber/ctr/vector_ops.h"
#include "liber/error.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace liber::ctr {

void init_linear(torch::nn::Linear& linear) {
  torch::nn::init::xavier_normal_(linear->weight);
  if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
}

namespace {

class GatherRows : public torch::autograd::Function<GatherRows> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& table,
                               const torch::Tensor& ids) {
    ctx->save_for_backward({ids});
    ctx->saved_data["rows"] = table.size(0);
    return table.index_select(0, ids);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor ids = ctx->get_saved_variables()[0].contiguous();
    const torch::Tensor grad = grads[0].contiguous();
    const int64_t rows = ctx->saved_data["rows"].toInt(), d = grad.size(1), n = ids.numel();
    torch::Tensor out = torch::zeros({rows, d}, grad.options());
    const int64_t* id = ids.data_ptr<int64_t>();
    const float* g = grad.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      float* row = o + id[i] * d;
      const float* src = g + i * d;
      for (int64_t j = 0; j < d; ++j) row[j] += src[j];
    }
    return {out, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor gather_rows(const torch::Tensor& table, const torch::Tensor& ids) {
  LIBER_ASSERT(table.scalar_type() == torch::kFloat && table.dim() == 2);
  LIBER_ASSERT(ids.scalar_type() == torch::kLong && ids.dim() == 1);
  return GatherRows::apply(table, ids);
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
// TargetAttention

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
// SelfAttention

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

// ---------------------------------------------------------------------------------------
// FusedAdam

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

// ---------------------------------------------------------------------------------------
// FM

torch::Tensor fm_interaction(const torch::Tensor& fields) {
  torch::Tensor sum = fields.sum(1);                 // [B, d]
  torch::Tensor sum_of_squares = fields.pow(2).sum(1);
  return (sum.pow(2) - sum_of_squares).sum(-1).mul(0.5);
}

}  // namespace liber::ctr
