// The attention fuse layer (UIF): a sample's visible partition vectors -> one small vector,
// as CTR's side-input module (liber/ctr/side_input.h). Trained jointly with the backbone.
//
//   rows [B, M] (right-aligned, -1 = empty) -> frozen table rows [B, M, r]
//   -> ReLU(Linear(r, h)) + slot (recency) embedding
//   attention: one self-attention layer across the partitions (residual), then target
//              attention whose query is Linear(target item embedding) (the backbone's
//              learned item-id embedding), Linear(target text vector), or their sum
//              (FuseConfig::query); with FuseConfig::interaction the output also sees
//              pooled * query
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
// The width reduce_vectors gives `rows` vectors of `width` for k (PCA needs k < rows).
int64_t reduced_width(int64_t rows, int64_t width, int64_t k);
// The top k principal directions [w, k] of centred rows [n, w] (double), signs fixed; their
// variances [k] into `variances` when given. k <= 0 or >= w: all w.
torch::Tensor principal_directions(const torch::Tensor& centred, int64_t k,
                                   torch::Tensor* variances = nullptr);

// The partition vectors the fuse layer reads: rows x width floats, shared by every module
// built from one plug.
struct FuseTable {
  std::shared_ptr<const std::vector<float>> vectors;
  int width = 0;
  // The item text vectors of a text query (FuseConfig::query), rows x item_width.
  std::shared_ptr<const std::vector<float>> item_vectors;
  int item_width = 0;
  int texts = 1;  // vectors per row (each item_width wide), for FuseConfig::similarity
  // A layer whose weights are loaded (a saved model): nothing is fitted, the reductions
  // come with the weights, `vectors` may be empty and set_rows() gives the rows. These are
  // the reduced widths of its training (reduced_width); 0 = a layer fitted on `vectors`.
  int loaded_row_dim = 0, loaded_item_dim = 0;
};

// The plug over a table given directly (fuse_plug(InterestTable, ...) builds one from the
// interest table's rows).
SideInputPlug fuse_plug(const FuseTable& table, const FuseConfig& config);

class FuseLayerImpl : public ctr::SideInputModule {
 public:
  FuseLayerImpl(const FuseTable& table, const FuseConfig& config, int64_t query_dim);
  // rows [B, M] int64, query [B, query_dim] -> [B, fused_dim]; `items` [B] (rows of the
  // item text table, -1 = none) when the query uses the text vectors.
  torch::Tensor fuse(const torch::Tensor& rows, const torch::Tensor& query,
                     const torch::Tensor& items = {});
  // The side-input module: batch.side are the rows (then the target's text row).
  torch::Tensor forward(const ctr::Batch& batch, const torch::Tensor& target) override;

  int64_t output_dim() const override { return fused_dim_; }
  // FuseConfig::similarity's input: rows [B, M], items [B] -> [B, M * texts], the cosine of
  // each visible slot's text to the target's text vector (0 where either is absent).
  torch::Tensor similarities(const torch::Tensor& rows, const torch::Tensor& items) const;
  // Replaces the rows with `raw` [P, width] float, reduced by the layer's own (fitted or
  // loaded) reduction: a served model reads partitions closed after its training. `items`
  // [I, item_width], when the layer uses item texts, replaces the item side the same way.
  // Not safe while forward() runs.
  void set_rows(const torch::Tensor& raw);
  void set_items(const torch::Tensor& raw);
  // Appends rows after the current ones; returns the first new row's index.
  int64_t append_rows(const torch::Tensor& raw);

  torch::Tensor table;  // [P, r] frozen buffer (saved with the weights, never trained)
  torch::Tensor item_table;  // [I, r'] frozen item text vectors (text query only)
  // The frozen reductions, saved with the weights so that rows encoded after training are
  // reduced as the training rows were: PCA of the rows (mean [1, w], directions [w, r],
  // scales [r]; no directions = none) and the items' subspace for similarity (mean [1, d],
  // basis [d, k]). Double, as fitted.
  torch::Tensor row_mean, row_top, row_scale, item_mean, item_basis;

 private:
  bool attention_ = true;
  bool item_query_ = true, text_query_ = false, interaction_ = false, similarity_ = false;
  bool needs_items_ = false;
  // Similarity: rows' texts and items projected on the items' principal directions and
  // normalised (frozen inputs, not saved with the weights).
  // Each row's texts projected on the items' subspace and normalised: [P, texts, k].
  torch::Tensor row_units(const torch::Tensor& raw) const;
  int64_t texts_ = 1;
  int64_t row_width_ = 0;
  torch::Tensor row_unit_, item_unit_;  // [P, texts, k], [I, k]: unit vectors
  torch::nn::Linear text_target_{nullptr};
  int64_t slots_, hidden_, fused_dim_;
  torch::nn::Linear input_{nullptr}, qkv_{nullptr}, target_{nullptr}, output_{nullptr};
  torch::Tensor slot_embedding_;  // [M, h]
  torch::Tensor no_history_;      // [fused_dim]
};
TORCH_MODULE(FuseLayer);

}  // namespace liber::uif
