// The CTR backbone interface and its factory. A backbone maps a Batch to logits [B]; the
// trainer (src/ctr/trainer.cpp) is the same for all of them.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "liber/ctr.h"
#include "liber/ctr/layers.h"
#include "liber/dataset.h"

namespace liber::ctr {

class Backbone : public torch::nn::Module {
 public:
  ~Backbone() override = default;

  // Logits [B] (before the sigmoid).
  virtual torch::Tensor forward(const Batch& batch) = 0;

  // Sum of squared embedding rows the batch uses, scaled by ModelConfig::embedding_l2 in the
  // trainer. The default covers `embedding`; a backbone with more tables adds them.
  virtual torch::Tensor embedding_l2(const Batch& batch) { return embedding->l2_penalty(batch); }

  // A loss of the last forward() in training mode besides the click loss (DIEN's auxiliary
  // loss), already weighted; undefined when the backbone has none. The trainer adds it.
  virtual torch::Tensor auxiliary_loss() { return {}; }

  // The field embeddings (and the side-input plug) every backbone has.
  FeatureEmbedding embedding{nullptr};
};

// Constructs the backbone named config.backbone; an unknown name throws
// liber::Error(ErrorKind::Config) listing the valid ones.
std::shared_ptr<Backbone> make_backbone(const FeatureSchema& schema, const ModelConfig& config);

// The constructors behind make_backbone, one per src/ctr/<name>.cpp.
std::shared_ptr<Backbone> make_din(const FeatureSchema& schema, const ModelConfig& config);
std::shared_ptr<Backbone> make_dcnv2(const FeatureSchema& schema, const ModelConfig& config);
std::shared_ptr<Backbone> make_deepfm(const FeatureSchema& schema, const ModelConfig& config);
std::shared_ptr<Backbone> make_autoint(const FeatureSchema& schema, const ModelConfig& config);
std::shared_ptr<Backbone> make_xdeepfm(const FeatureSchema& schema, const ModelConfig& config);
std::shared_ptr<Backbone> make_dien(const FeatureSchema& schema, const ModelConfig& config);
std::shared_ptr<Backbone> make_fibinet(const FeatureSchema& schema, const ModelConfig& config);
std::shared_ptr<Backbone> make_fignn(const FeatureSchema& schema, const ModelConfig& config);

}  // namespace liber::ctr
