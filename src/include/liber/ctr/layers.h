// Shared libtorch layers of the CTR backbones: field embeddings (with the side-input plug),
// MLP, DIN target attention, DCNv2 cross network, AutoInt self-attention, xDeepFM's CIN,
// FiBiNet's SENET and bilinear interaction, FiGNN's field graph, DIEN's GRU and the FM term.
// Every backbone in src/ctr/ is a short composition of these.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "liber/ctr/side_input.h"
#include "liber/dataset.h"

namespace liber::ctr {

// A minibatch: rows of a SampleSet as tensors.
struct Batch {
  torch::Tensor sparse;     // [B, S] int64, one id per sparse field
  torch::Tensor sequences;  // [B, sum L] int64, sequence fields side by side (undefined if none)
  torch::Tensor side;       // [B, W] int64, the side input's values (undefined without one)
  int64_t size() const { return sparse.size(0); }
};

// Xavier-normal weights and zero bias, FuxiCTR's default for its linear layers.
void init_linear(torch::nn::Linear& linear);

// table.index_select(0, ids) for a float [rows, d] table and 1-D int64 ids, whose backward
// scatter-adds the rows with one tight loop (libtorch 1.13's index_select / embedding
// backward runs one tensor operation per looked-up row).
torch::Tensor gather_rows(const torch::Tensor& table, const torch::Tensor& ids);

// What FeatureEmbedding hands to a backbone.
struct FieldEmbeddings {
  torch::Tensor fields;        // [B, F, d]: sparse fields, pooled sequence fields, side input
  torch::Tensor history;       // [B, N, d] history item embeddings, zero at padding
  torch::Tensor history_mask;  // [B, N] float, 1 where a history item is present
  torch::Tensor target;        // [B, d] embedding of the target item id
  torch::Tensor side;          // [B, k] the side-input module's output (undefined without one)
};

// Embeds every field of a FeatureSchema. Each SparseField and each non-shared SequenceField
// owns a block of rows in one fused table (same model as one table per field, but a batch
// is looked up with one gather); a SequenceField with `shares_embedding_with` reads the
// named SparseField's rows. Sequence fields are pooled by a mean over their non-zero ids.
// With a side input (schema.side) its module's output, given the target item's embedding,
// is projected to d and appended as the last field: every backbone consumes it that way.
class FeatureEmbeddingImpl : public torch::nn::Module {
 public:
  // pool_history = false leaves the history field out of `fields` (DIN attends over it).
  FeatureEmbeddingImpl(const FeatureSchema& schema, int64_t dim, bool pool_history = true);

  FieldEmbeddings forward(const Batch& batch);
  // Sum of the squared embedding rows the batch uses (each distinct row once).
  torch::Tensor l2_penalty(const Batch& batch);

  int64_t num_fields() const { return num_fields_; }
  int64_t dim() const { return dim_; }

  torch::Tensor table;                          // [rows, d]
  std::shared_ptr<SideInputModule> side;        // when schema.side is enabled
  torch::nn::Linear side_projection{nullptr};   // side output -> d

 private:
  torch::Tensor sparse_ids(const Batch& batch) const;    // [B, S] rows of the fused table
  torch::Tensor sequence_ids(const Batch& batch) const;  // [B, sum L]

  int64_t dim_ = 0;
  int64_t num_fields_ = 0;
  int64_t num_sparse_ = 0;
  int64_t sequence_width_ = 0;
  int history_field_ = -1;
  int target_field_ = -1;
  bool pool_history_ = true;
  torch::Tensor sparse_offsets_;    // [S] first row of each sparse field's block
  torch::Tensor sequence_offsets_;  // [sum L] first row of each position's block
  std::vector<std::pair<int64_t, int64_t>> sequence_slices_;  // (start, length) per field
};
TORCH_MODULE(FeatureEmbedding);

// Linear / ReLU / dropout stack; with output_dim > 0 a final Linear without activation.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t input_dim, const std::vector<int>& hidden, double dropout,
          int64_t output_dim = 0);
  torch::Tensor forward(torch::Tensor x);
  int64_t output_dim() const { return output_dim_; }

 private:
  torch::nn::Sequential layers_;
  int64_t output_dim_ = 0;
};
TORCH_MODULE(MLP);

// DIN's local activation unit: an MLP on [q, k, q - k, q * k] scores each history item, the
// scores are masked (no softmax, as in the DIN paper) and weight a sum of the items.
// The first layer keeps the usual Linear(4d, h) parameters but is evaluated as
// (W_q + W_d) q + (W_k - W_d) k + W_p (q * k): the query part once per sample instead of
// once per history item, and no [B, N, 4d] concatenation. With one hidden layer and no
// dropout (the default) the ReLU and the output layer run as one fused kernel;
// allow_fused = false keeps plain libtorch ops (same parameters, same result).
class TargetAttentionImpl : public torch::nn::Module {
 public:
  TargetAttentionImpl(int64_t dim, const std::vector<int>& hidden, double dropout = 0.0,
                      bool allow_fused = true);
  // query [B, d], keys [B, N, d], mask [B, N] -> [B, d]
  torch::Tensor forward(torch::Tensor query, torch::Tensor keys, torch::Tensor mask);

 private:
  int64_t dim_;
  bool fused_ = false;
  torch::nn::Linear first_{nullptr};   // [q, k, q - k, q * k] -> h
  torch::nn::Linear output_{nullptr};  // h -> 1 (one hidden layer, no dropout)
  torch::nn::Dropout dropout_{nullptr};
  MLP rest_{nullptr};                  // h -> ... -> 1 (otherwise)
};
TORCH_MODULE(TargetAttention);

// DCNv2 full-rank cross network: x_{l+1} = x0 * (W_l x_l + b_l) + x_l.
class CrossNetworkImpl : public torch::nn::Module {
 public:
  CrossNetworkImpl(int64_t dim, int layers);
  torch::Tensor forward(torch::Tensor x0);

 private:
  std::vector<torch::nn::Linear> layers_;
};
TORCH_MODULE(CrossNetwork);

// One AutoInt interacting layer: multi-head self-attention over fields with a residual
// projection and ReLU. [B, F, input_dim] -> [B, F, heads * attention_dim]. The attention
// itself runs as one fused kernel; allow_fused = false keeps plain libtorch ops (same
// parameters, same result).
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t input_dim, int64_t attention_dim, int64_t heads,
                    bool allow_fused = true);
  torch::Tensor forward(torch::Tensor x);
  int64_t output_dim() const { return attention_dim_ * heads_; }

 private:
  int64_t attention_dim_, heads_;
  bool fused_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, residual_{nullptr};
};
TORCH_MODULE(SelfAttention);

// The first-order (logistic regression) term of the FM family: one scalar weight per
// feature value (a 1-d embedding of every field, the side input left out), a linear map
// of the side-input output when there is one, and a bias. -> [B]. Its parameters are
// registered on the backbone that owns it as "linear", "side_linear" and "bias", the names
// DeepFM's saved models have.
class FirstOrder {
 public:
  FirstOrder() = default;
  // side_dim: the side-input module's output width (0 = none).
  FirstOrder(torch::nn::Module& owner, const FeatureSchema& schema, int64_t side_dim);
  // side: the side-input output the backbone's FeatureEmbedding computed (undefined = none).
  torch::Tensor operator()(const Batch& batch, const torch::Tensor& side);
  torch::Tensor l2_penalty(const Batch& batch) { return weights_->l2_penalty(batch); }

 private:
  FeatureEmbedding weights_{nullptr};
  torch::nn::Linear side_{nullptr};
  torch::Tensor bias_;
};

// xDeepFM's compressed interaction network (Lian et al., KDD 2018): layer k's H_k feature
// maps are linear combinations of every (map of layer k-1) x (field) Hadamard product,
//   X_k[h, :] = sum_{i, j} W_k[h, i, j] X_{k-1}[i, :] * X_0[j, :] + b_k[h],
// each layer's maps sum-pooled over the embedding dimension, all pooled values -> one logit.
// (FuxiCTR's CompressedInteractionNet: a kernel-1 Conv1d over the products, no activation.)
// [B, F, d] -> [B]. The products run as one fused kernel; allow_fused = false keeps plain
// libtorch ops (same parameters, same result).
class CompressedInteractionImpl : public torch::nn::Module {
 public:
  CompressedInteractionImpl(int64_t fields, const std::vector<int>& layers,
                            bool allow_fused = true);
  torch::Tensor forward(const torch::Tensor& x0);

 private:
  bool fused_;
  std::vector<torch::nn::Linear> layers_;  // F * H_{k-1} -> H_k, over the product channels
  torch::nn::Linear output_{nullptr};      // sum H_k -> 1
};
TORCH_MODULE(CompressedInteraction);

// FiBiNet's squeeze-excitation (Huang et al., RecSys 2019): each field's embedding mean
// goes through a bottleneck F -> max(1, F / reduction) -> F (no bias, ReLU after each) and
// re-weights that field. [B, F, d] -> [B, F, d].
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  SqueezeExcitationImpl(int64_t fields, int reduction);
  torch::Tensor forward(const torch::Tensor& fields);

 private:
  torch::nn::Linear squeeze_{nullptr}, excite_{nullptr};
};
TORCH_MODULE(SqueezeExcitation);

// FiBiNet's bilinear interaction, one d x d matrix per field pair ("field-interaction"):
// p_ij = (e_i W_ij) * e_j for i < j. [B, F, d] -> [B, F(F-1)/2, d]. All pairs run as one
// batched matmul.
class BilinearInteractionImpl : public torch::nn::Module {
 public:
  BilinearInteractionImpl(int64_t fields, int64_t dim);
  torch::Tensor forward(const torch::Tensor& fields);

 private:
  torch::Tensor left_, right_;  // [P] field indices of each pair
  torch::Tensor weight_;        // [P, d, d]
};
TORCH_MODULE(BilinearInteraction);

// FiGNN's field graph (Li et al., CIKM 2019): fields are the nodes of a complete graph whose
// edge weights are a softmax over LeakyReLU(w . [e_i, e_j]) (no self-loops), computed once
// from the embeddings. Each of `steps` rounds passes messages W_in[i] sum_j g_ij W_out[j] h_j
// (+ b), updates every node with a GRU cell and adds the embeddings back (residual).
// [B, F, d] -> [B, F, d].
class FieldGraphImpl : public torch::nn::Module {
 public:
  FieldGraphImpl(int64_t fields, int64_t dim, int steps);
  torch::Tensor forward(const torch::Tensor& fields);

 private:
  int64_t fields_, dim_;
  torch::nn::Linear edge_{nullptr};  // [e_i, e_j] -> edge logit, evaluated as two halves
  std::vector<torch::Tensor> w_in_, w_out_, bias_;                 // per step: [F, d, d], [d]
  torch::nn::GRUCell gru_{nullptr};
};
TORCH_MODULE(FieldGraph);

// FiGNN's attentional scoring: each node's state scores the sample (w . h_i), a sigmoid gate
// over all states weighs the scores, their sum is the logit. [B, F, d] -> [B].
class AttentionalScoreImpl : public torch::nn::Module {
 public:
  AttentionalScoreImpl(int64_t fields, int64_t dim);
  torch::Tensor forward(const torch::Tensor& states);

 private:
  torch::nn::Linear score_{nullptr}, gate_{nullptr};
};
TORCH_MODULE(AttentionalScore);

// DIEN's interest extractor (Zhou et al., AAAI 2019): a GRU over the history in time order,
// oldest first. The history is stored most recent first and 0-padded at the end, so the GRU
// runs from the last position to the first, a masked step leaving the state as it is.
// keys [B, N, d], mask [B, N] -> states [B, N, d] (the state after each position's item,
// zero before the first item).
// Its cell is h' = h + u * (n - h), u the update gate: the form AUGRU scales by attention.
// The gates run as one fused kernel; allow_fused = false keeps plain libtorch ops (same
// parameters, same result).
class InterestGruImpl : public torch::nn::Module {
 public:
  explicit InterestGruImpl(int64_t dim, bool allow_fused = true);
  torch::Tensor forward(const torch::Tensor& keys, const torch::Tensor& mask);
  // The same recurrence with every step's update gate scaled by step_weight [B, N] (DIEN's
  // AUGRU; weight 0 leaves the state as it is). -> the final state [B, d].
  torch::Tensor final_state(const torch::Tensor& inputs, const torch::Tensor& step_weight);

 private:
  // Runs the recurrence; with `all_states` every position's state, else the final one.
  torch::Tensor run(const torch::Tensor& inputs, const torch::Tensor& step_weight, bool all_states);
  int64_t dim_;
  bool fused_;
  torch::nn::Linear input_{nullptr};   // x -> [u, r, n] gates, once for all positions
  torch::nn::Linear hidden_{nullptr};  // h -> [u, r, n] gates, once per step
};
TORCH_MODULE(InterestGru);

// Factorization-machine second-order term: sum over field pairs of <e_i, e_j>,
// 0.5 * ((sum_i e_i)^2 - sum_i e_i^2) summed over d. [B, F, d] -> [B].
torch::Tensor fm_interaction(const torch::Tensor& fields);

}  // namespace liber::ctr
