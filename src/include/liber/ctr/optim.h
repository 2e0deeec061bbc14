// The trainer's optimizer (src/ctr/optim.cpp).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace liber::ctr {

// Adam (Kingma & Ba; the update of torch::optim::Adam without weight decay or amsgrad) as
// one pass per parameter over raw memory, instead of libtorch's seven tensor operations and
// their temporaries per parameter. Parameters must be contiguous float tensors.
class FusedAdam {
 public:
  FusedAdam(std::vector<torch::Tensor> params, double lr, double beta1 = 0.9,
            double beta2 = 0.999, double eps = 1e-8);
  // Drops the gradients (the next backward allocates them afresh, no zero-fill).
  void zero_grad();
  void step();

 private:
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_;
  double lr_, beta1_, beta2_, eps_;
  int64_t step_ = 0;
};

}  // namespace liber::ctr
