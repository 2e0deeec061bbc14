// DeepFM (Guo et al., IJCAI 2017): logit = first-order term + FM pairwise interactions + MLP,
// all over the same field embeddings. The first-order term uses per-feature 1-d embeddings
// (FuxiCTR's LR layer), so the dense plug-in contributes a linear term there as well; the
// LIBER input enters that term as the fuse layer's output, fused once for both parts.
#include "liber/ctr/backbone.h"

namespace liber::ctr {
namespace {

class DeepFm : public Backbone {
 public:
  DeepFm(const FeatureSchema& schema, const ModelConfig& config) {
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d));
    FeatureSchema first_order = schema;
    if (schema.interests.width > 0) {
      first_order.dense_dim += schema.interests.fused_dim;
      first_order.interests = InterestInput{};
    }
    linear_ = register_module("linear", FeatureEmbedding(first_order, 1));
    bias_ = register_parameter("bias", torch::zeros({1}));
    mlp_ = register_module("mlp", MLP(embedding->num_fields() * d, config.mlp, config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    FieldEmbeddings e = embedding(batch);
    torch::Tensor fields = e.fields;  // [B, F, d]
    Batch first = batch;
    if (e.interest.defined())
      first.dense = batch.dense.defined() ? torch::cat({batch.dense, e.interest}, 1) : e.interest;
    torch::Tensor first_order = linear_(first).fields.sum({1, 2});  // [B]
    return first_order + bias_ + fm_interaction(fields) + mlp_(fields.flatten(1)).squeeze(-1);
  }

  torch::Tensor embedding_l2(const Batch& batch) override {
    return embedding->l2_penalty(batch) + linear_->l2_penalty(batch);
  }

 private:
  FeatureEmbedding linear_{nullptr};
  torch::Tensor bias_;
  MLP mlp_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_deepfm(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<DeepFm>(schema, config);
}

}  // namespace liber::ctr
