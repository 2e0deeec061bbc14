// gather_rows: a table lookup whose backward scatters with one loop (libtorch 1.13's
// index_select backward runs one tensor operation per looked-up row).
#include "liber/ctr/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "liber/ctr/vector_ops.h"
#include "liber/error.h"

namespace liber::ctr {

namespace {

class GatherRows : public torch::autograd::Function<GatherRows> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& table,
                               const torch::Tensor& ids) {
    ctx->save_for_backward({ids});
    ctx->saved_data["rows"] = table.size(0);
    return table.index_select(0, ids);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor ids = ctx->get_saved_variables()[0].contiguous();
    const torch::Tensor grad = grads[0].contiguous();
    const int64_t rows = ctx->saved_data["rows"].toInt(), d = grad.size(1), n = ids.numel();
    torch::Tensor out = torch::zeros({rows, d}, grad.options());
    const int64_t* id = ids.data_ptr<int64_t>();
    const float* g = grad.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      float* row = o + id[i] * d;
      const float* src = g + i * d;
      for (int64_t j = 0; j < d; ++j) row[j] += src[j];
    }
    return {out, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor gather_rows(const torch::Tensor& table, const torch::Tensor& ids) {
  LIBER_ASSERT(table.scalar_type() == torch::kFloat && table.dim() == 2);
  LIBER_ASSERT(ids.scalar_type() == torch::kLong && ids.dim() == 1);
  return GatherRows::apply(table, ids);
}

}  // namespace liber::ctr
