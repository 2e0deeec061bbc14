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
    first_order_ = FirstOrder(*this, schema, embedding->side ? embedding->side->output_dim() : 0);
    mlp_ = register_module("mlp", MLP(embedding->num_fields() * d, config.mlp, config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    FieldEmbeddings e = embedding(batch);
    torch::Tensor fields = e.fields;  // [B, F, d]
    return first_order_(batch, e.side) + fm_interaction(fields) + mlp_(fields.flatten(1)).squeeze(-1);
  }

  torch::Tensor embedding_l2(const Batch& batch) override {
    return embedding->l2_penalty(batch) + first_order_.l2_penalty(batch);
  }

 private:
  FirstOrder first_order_;
  MLP mlp_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_deepfm(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<DeepFm>(schema, config);
}

}  // namespace liber::ctr
