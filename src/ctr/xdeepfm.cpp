// xDeepFM (Lian et al., KDD 2018): logit = first-order term + compressed interaction network
// (explicit, vector-wise feature interactions of bounded degree) + MLP (implicit ones), all
// over the same field embeddings; a side input is one more field of both and has its own
// linear term, as in DeepFM.
#include "liber/ctr/backbone.h"

namespace liber::ctr {
namespace {

class XDeepFm : public Backbone {
 public:
  XDeepFm(const FeatureSchema& schema, const ModelConfig& config) {
    const int64_t d = config.embedding_dim;
    embedding = register_module("embedding", FeatureEmbedding(schema, d));
    first_order_ = FirstOrder(*this, schema, embedding->side ? embedding->side->output_dim() : 0);
    cin_ = register_module("cin", CompressedInteraction(embedding->num_fields(), config.cin_layers));
    mlp_ = register_module("mlp", MLP(embedding->num_fields() * d, config.mlp, config.dropout, 1));
  }

  torch::Tensor forward(const Batch& batch) override {
    FieldEmbeddings e = embedding(batch);
    return first_order_(batch, e.side) + cin_(e.fields) + mlp_(e.fields.flatten(1)).squeeze(-1);
  }

  torch::Tensor embedding_l2(const Batch& batch) override {
    return embedding->l2_penalty(batch) + first_order_.l2_penalty(batch);
  }

 private:
  FirstOrder first_order_;
  CompressedInteraction cin_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_xdeepfm(const FeatureSchema& schema, const ModelConfig& config) {
  return std::make_shared<XDeepFm>(schema, config);
}

}  // namespace liber::ctr
