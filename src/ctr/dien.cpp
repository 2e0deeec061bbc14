// DIEN (Zhou et al., AAAI 2019): a GRU extracts an interest state after every history item,
// trained also by an auxiliary loss (each state must tell the next item from another
// sample's item); the target item attends over the states (bilinear, softmax) and an AUGRU,
// whose update gate is scaled by that attention, evolves them into one interest vector. It
// joins the other field embeddings (and the side input), and an MLP gives the logit.
#include "liber/ctr/backbone.h"
#include "liber/error.h"

namespace liber::ctr {
namespace {

class Dien : public Backbone {
 public:
  Dien(const FeatureSchema& schema, const ModelConfig& config)
      : auxiliary_weight_(config.auxiliary_loss_weight) {
    if (schema.target_item_field < 0 || schema.history_field < 0)
      throw Error(ErrorKind::Config, "dien needs a target item field and a history field");
    if (!(auxiliary_weight_ >= 0))
      throw Error(ErrorKind::Config, "auxiliary_loss_weight must be >= 0");
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d, /*pool_history=*/false));
    extractor_ = register_module("extractor", InterestGru(d));
    attention_ = register_parameter("attention", torch::eye(d));
    evolution_ = register_module("evolution", InterestGru(d));
    mlp_ = register_module("mlp", MLP((embedding->num_fields() + 1) * d, config.mlp,
                                      config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    FieldEmbeddings e = embedding(batch);
    torch::Tensor states = extractor_(e.history, e.history_mask);  // [B, N, d]
    // Written in training only: a served model runs forward() from several threads at once.
    if (is_training())
      auxiliary_ = auxiliary_weight_ > 0
                       ? auxiliary_loss(states, e.history, e.history_mask) * auxiliary_weight_
                       : torch::Tensor();
    // Bilinear attention of the target over the states, softmax over the present items.
    torch::Tensor scores =
        torch::bmm(states, torch::matmul(e.target, attention_.t()).unsqueeze(2)).squeeze(2);
    torch::Tensor weight =
        torch::softmax(scores.masked_fill(e.history_mask == 0, -1e9), 1) * e.history_mask;
    torch::Tensor interest = evolution_->final_state(states, weight);  // [B, d]
    return mlp_(torch::cat({e.fields.flatten(1), interest}, 1)).squeeze(-1);
  }

  torch::Tensor auxiliary_loss() override { return is_training() ? auxiliary_ : torch::Tensor(); }

 private:
  // The state after item p+1 (the older one) scores the item at p against the item at p of
  // the sample before it in the batch (a negative drawn from the batch's own behaviors, so
  // as popular as the behaviors are; skipped where it is the positive item itself): binary
  // cross-entropy of both inner products, averaged over the pairs present.
  static torch::Tensor auxiliary_loss(const torch::Tensor& states, const torch::Tensor& items,
                                      const torch::Tensor& mask) {
    const int64_t n = items.size(1);
    if (n < 2 || items.size(0) < 2) return torch::zeros({}, states.options());
    torch::Tensor h = states.narrow(1, 1, n - 1);
    torch::Tensor positive = items.narrow(1, 0, n - 1);
    torch::Tensor negative = positive.roll(1, 0);
    torch::Tensor present = mask.narrow(1, 1, n - 1) * mask.narrow(1, 0, n - 1);
    // Equal embedding rows are the same item (rows start random and train apart).
    torch::Tensor negative_present = present * mask.narrow(1, 0, n - 1).roll(1, 0) *
                                     (negative != positive).any(-1).to(present.dtype());
    auto term = [&](const torch::Tensor& item, const torch::Tensor& weight, float label) {
      torch::Tensor logit = (h * item).sum(-1);
      return torch::binary_cross_entropy_with_logits(logit, torch::full_like(logit, label), weight,
                                                     {}, at::Reduction::Sum);
    };
    torch::Tensor count = (present.sum() + negative_present.sum()).clamp_min(1);
    return (term(positive, present, 1) + term(negative, negative_present, 0)) / count;
  }

  double auxiliary_weight_;
  InterestGru extractor_{nullptr}, evolution_{nullptr};
  torch::Tensor attention_;  // [d, d], the identity at first (dot-product attention)
  MLP mlp_{nullptr};
  torch::Tensor auxiliary_;
};

}  // namespace

std::shared_ptr<Backbone> make_dien(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<Dien>(schema, config);
}

}  // namespace liber::ctr
