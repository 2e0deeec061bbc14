// The attention fuse layer (UIF): a sample's visible partition vectors -> one small vector,
// as CTR's side-input module (liber/ctr/side_input.h). Trained jointly with the backbone.
//
//   rows [B, M] (right-aligned, -1 = empty) -> frozen table rows [B, M, r]
//   -> ReLU(Linear(r, h)) + slot (recency) embedding
//   attention: one self-attention layer across the partitions (residual), then target
//              attention whose query is Linear(target item embedding); the target is the
//              backbone's learned item-id embedding (the item descriptions are not needed)
//   mean:      masked mean over the partitions (the ablation)
//   -> Linear(h, fused_dim); a sample with no visible partition gets a learned vector.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "liber/ctr/side_input.h"
#include "liber/uif.h"

namespace liber::uif {

// Reduces the frozen vectors [P, width] to [P, k] by PCA (centered, whitened by the
// component's standard deviation); k >= width or k <= 0 leaves them unchanged (as float).
torch::Tensor reduce_vectors(const torch::Tensor& vectors, int64_t k);

// The partition vectors the fuse layer reads: rows x width floats, shared by every module
// built from one plug.
struct FuseTable {
  std::shared_ptr<const std::vector<float>> vectors;
  int width = 0;
};

// The plug over a table given directly (fuse_plug(InterestTable, ...) builds one from the
// interest table's rows).
SideInputPlug fuse_plug(const FuseTable& table, const FuseConfig& config);

class FuseLayerImpl : public ctr::SideInputModule {
 public:
  FuseLayerImpl(const FuseTable& table, const FuseConfig& config, int64_t query_dim);
  // rows [B, M] int64, query [B, query_dim] -> [B, fused_dim]
  torch::Tensor fuse(const torch::Tensor& rows, const torch::Tensor& query);
  // The side-input module: batch.side are the rows.
  torch::Tensor forward(const ctr::Batch& batch, const torch::Tensor& target) override;

  int64_t output_dim() const override { return fused_dim_; }
  torch::Tensor table;  // [P, r] frozen buffer (saved with the weights, never trained)

 private:
  bool attention_ = true;
  int64_t slots_, hidden_, fused_dim_;
  torch::nn::Linear input_{nullptr}, query_{nullptr}, key_{nullptr}, value_{nullptr},
      target_{nullptr}, output_{nullptr};
  torch::Tensor slot_embedding_;  // [M, h]
  torch::Tensor no_history_;      // [fused_dim]
};
TORCH_MODULE(FuseLayer);

}  // namespace liber::uif
