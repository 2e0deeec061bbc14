// DIN (Zhou et al., KDD 2018): the target item's embedding attends over the embeddings of the
// recent history items; the attention-pooled history replaces the history field's mean pool
// next to all other field embeddings (and the side input), and an MLP gives the logit.
#include "liber/ctr/backbone.h"
#include "liber/error.h"

namespace liber::ctr {
namespace {

class Din : public Backbone {
 public:
  Din(const FeatureSchema& schema, const ModelConfig& config) {
    if (schema.target_item_field < 0 || schema.history_field < 0)
      throw Error(ErrorKind::Config, "din needs a target item field and a history field");
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d, /*pool_history=*/false));
    attention_ = register_module("attention",
                                 TargetAttention(d, config.attention_mlp, config.dropout));
    mlp_ = register_module("mlp", MLP((embedding->num_fields() + 1) * d, config.mlp,
                                      config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    FieldEmbeddings e = embedding(batch);
    torch::Tensor interest = attention_(e.target, e.history, e.history_mask);  // [B, d]
    return mlp_(torch::cat({e.fields.flatten(1), interest}, 1)).squeeze(-1);
  }

 private:
  TargetAttention attention_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_din(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<Din>(schema, config);
}

}  // namespace liber::ctr
