// FiBiNet (Huang et al., RecSys 2019): squeeze-excitation re-weights the fields, bilinear
// interactions of the field pairs are taken on both the plain and the re-weighted
// embeddings, an MLP over all of them plus the first-order term gives the logit. The side
// input is one more field of both and has its own linear term, as in DeepFM.
#include "liber/ctr/backbone.h"

namespace liber::ctr {
namespace {

class FiBiNet : public Backbone {
 public:
  FiBiNet(const FeatureSchema& schema, const ModelConfig& config) {
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d));
    const int64_t f = embedding->num_fields();
    first_order_ = FirstOrder(*this, schema, embedding->side ? embedding->side->output_dim() : 0);
    senet_ = register_module("senet", SqueezeExcitation(f, config.senet_reduction));
    plain_ = register_module("bilinear", BilinearInteraction(f, d));
    weighted_ = register_module("bilinear_senet", BilinearInteraction(f, d));
    mlp_ = register_module("mlp", MLP(f * (f - 1) * d, config.mlp, config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    FieldEmbeddings e = embedding(batch);
    torch::Tensor pairs = torch::cat({plain_(e.fields), weighted_(senet_(e.fields))}, 1);
    return first_order_(batch, e.side) + mlp_(pairs.flatten(1)).squeeze(-1);
  }

  torch::Tensor embedding_l2(const Batch& batch) override {
    return embedding->l2_penalty(batch) + first_order_.l2_penalty(batch);
  }

 private:
  FirstOrder first_order_;
  SqueezeExcitation senet_{nullptr};
  BilinearInteraction plain_{nullptr}, weighted_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_fibinet(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<FiBiNet>(schema, config);
}

}  // namespace liber::ctr
