// The fuse layer's fused kernels (src/uif/kernels/): each replaces a chain of small libtorch
// operations whose dispatch cost more than their arithmetic (bench/fuse_bench).
#pragma once

#include <torch/torch.h>

namespace liber::uif {

// The attention path of the fuse layer as one autograd node, over the batch's distinct table
// rows only:
//   table [P, r] frozen rows (no gradient), used [U]: the rows the batch shows
//   a_u = relu(w_in [h, r] . table[used[u]] + b_in [h]);  slot [M, h]: the recency embedding
//   x_i = a[row of slot i] + slot[i];  query | key | value = w_qkv [3h, h] . x_i + b_qkv [3h]
//   self-attention across the sample's visible slots (residual), then target attention with
//   query tq [B, h] -> pooled [B, h] (0 for a sample with no visible slot)
// local [B, M] indexes used (-1 = empty slot). Gradients reach w_in, b_in, slot, w_qkv, b_qkv
// and tq.
torch::Tensor partition_attention(const torch::Tensor& table, const torch::Tensor& used,
                                  const torch::Tensor& w_in, const torch::Tensor& b_in,
                                  const torch::Tensor& slot, const torch::Tensor& w_qkv,
                                  const torch::Tensor& b_qkv, const torch::Tensor& local,
                                  const torch::Tensor& tq);

}  // namespace liber::uif
