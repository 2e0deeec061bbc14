// DCNv2 (Wang et al., WWW 2021), parallel structure: the flattened field embeddings go
// through a full-rank cross network and, side by side, an MLP; their outputs are
// concatenated and a linear layer gives the logit.
#include "liber/ctr/backbone.h"

namespace liber::ctr {
namespace {

class Dcnv2 : public Backbone {
 public:
  Dcnv2(const FeatureSchema& schema, const ModelConfig& config) {
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d));
    const int64_t width = embedding->num_fields() * d;
    cross_ = register_module("cross", CrossNetwork(width, config.cross_layers));
    mlp_ = register_module("mlp", MLP(width, config.mlp, config.dropout));
    output_ = register_module("output", torch::nn::Linear(width + mlp_->output_dim(), 1));
    init_linear(output_);
  }

  torch::Tensor forward(const Batch& batch) override {
    torch::Tensor x = embedding(batch).fields.flatten(1);
    return output_(torch::cat({cross_(x), mlp_(x)}, 1)).squeeze(-1);
  }

 private:
  CrossNetwork cross_{nullptr};
  MLP mlp_{nullptr};
  torch::nn::Linear output_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_dcnv2(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<Dcnv2>(schema, config);
}

}  // namespace liber::ctr
