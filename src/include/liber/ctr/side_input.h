// The side-input plug's module side (FeatureSchema::side in liber/dataset.h): what a plug's
// owner implements so that every backbone can consume its input. FeatureEmbedding builds one
// module per backbone from the factory, projects its [B, k] output to the embedding width and
// appends it as the last field.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "liber/dataset.h"

namespace liber::ctr {

struct Batch;

class SideInputModule : public torch::nn::Module {
 public:
  ~SideInputModule() override = default;
  // batch.side [B, width] int64 and the target item's embedding [B, d] (undefined when the
  // schema has no target item field) -> [B, output_dim()].
  virtual torch::Tensor forward(const Batch& batch, const torch::Tensor& target) = 0;
  virtual int64_t output_dim() const = 0;
};

class SideInputFactory {
 public:
  virtual ~SideInputFactory() = default;
  // A new module (its own parameters) for a backbone whose embeddings have `dim` values.
  virtual std::shared_ptr<SideInputModule> make(int64_t dim) const = 0;
  // True when the module needs the target item's embedding (the schema must have one).
  virtual bool needs_target() const { return false; }
};

}  // namespace liber::ctr
