// AutoInt (Song et al., CIKM 2019): stacked multi-head self-attention layers with residual
// connections over the field embeddings, flattened into a linear logit. With config.mlp
// non-empty it is AutoInt+: an MLP over the flattened embeddings adds its logit.
#include "liber/ctr/backbone.h"

#include <string>

namespace liber::ctr {
namespace {

class AutoInt : public Backbone {
 public:
  AutoInt(const FeatureSchema& schema, const ModelConfig& config) {
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d));
    const int64_t fields = embedding->num_fields();
    int64_t width = d;
    for (int i = 0; i < config.attention_layers; ++i) {
      SelfAttention layer(width, config.attention_dim, config.attention_heads);
      width = layer->output_dim();
      layers_.push_back(register_module("attention" + std::to_string(i), layer));
    }
    output_ = register_module("output", torch::nn::Linear(fields * width, 1));
    init_linear(output_);
    if (!config.mlp.empty())
      mlp_ = register_module("mlp", MLP(fields * d, config.mlp, config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    torch::Tensor fields = embedding(batch).fields;  // [B, F, d]
    torch::Tensor x = fields;
    for (auto& layer : layers_) x = layer(x);
    torch::Tensor logit = output_(x.flatten(1)).squeeze(-1);
    if (mlp_) logit = logit + mlp_(fields.flatten(1)).squeeze(-1);
    return logit;
  }

 private:
  std::vector<SelfAttention> layers_;
  torch::nn::Linear output_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_autoint(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<AutoInt>(schema, config);
}

}  // namespace liber::ctr
