// FiGNN (Li et al., CIKM 2019): the fields are nodes of a graph whose edges are attention
// weights; gated message passing over it models their interactions, and an attentional
// score over the final node states gives the logit. The side input is one more node.
#include "liber/ctr/backbone.h"

namespace liber::ctr {
namespace {

class FiGnn : public Backbone {
 public:
  FiGnn(const FeatureSchema& schema, const ModelConfig& config) {
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d));
    graph_ = register_module("graph", FieldGraph(embedding->num_fields(), d, config.graph_steps));
    score_ = register_module("score", AttentionalScore(embedding->num_fields(), d));
  }

  torch::Tensor forward(const Batch& batch) override {
    return score_(graph_(embedding(batch).fields));
  }

 private:
  FieldGraph graph_{nullptr};
  AttentionalScore score_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_fignn(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<FiGnn>(schema, config);
}

}  // namespace liber::ctr
