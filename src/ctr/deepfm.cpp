// DeepFM (Guo et al., IJCAI 2017): logit = first-order term + FM pairwise interactions + MLP,
// all over the same field embeddings. The first-order term uses per-feature 1-d embeddings
// (FuxiCTR's LR layer); a side input contributes a linear term there as well, from the same
// side-input output as the deep part (computed once).
#include "liber/ctr/backbone.h"

namespace liber::ctr {
namespace {

class DeepFm : public Backbone {
 public:
  DeepFm(const FeatureSchema& schema, const ModelConfig& config) {
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d));
    FeatureSchema first_order = schema;
    first_order.side = {};
    linear_ = register_module("linear", FeatureEmbedding(first_order, 1));
    if (embedding->side) {
      side_linear_ = register_module("side_linear", torch::nn::Linear(embedding->side->output_dim(), 1));
      init_linear(side_linear_);
    }
    bias_ = register_parameter("bias", torch::zeros({1}));
    mlp_ = register_module("mlp", MLP(embedding->num_fields() * d, config.mlp, config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    FieldEmbeddings e = embedding(batch);
    torch::Tensor fields = e.fields;  // [B, F, d]
    torch::Tensor first_order = linear_(batch).fields.sum({1, 2});  // [B]
    if (side_linear_) first_order = first_order + side_linear_(e.side).squeeze(-1);
    return first_order + bias_ + fm_interaction(fields) + mlp_(fields.flatten(1)).squeeze(-1);
  }

  torch::Tensor embedding_l2(const Batch& batch) override {
    return embedding->l2_penalty(batch) + linear_->l2_penalty(batch);
  }

 private:
  FeatureEmbedding linear_{nullptr};
  torch::nn::Linear side_linear_{nullptr};  // side output -> 1
  torch::Tensor bias_;
  MLP mlp_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_deepfm(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<DeepFm>(schema, config);
}

}  // namespace liber::ctr
