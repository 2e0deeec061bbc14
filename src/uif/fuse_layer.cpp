// The attention fuse layer; see src/include/liber/uif/fuse_layer.h.
#include "liber/uif/fuse_layer.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "liber/ctr/layers.h"
#include "liber/ctr/vector_ops.h"
#include "liber/error.h"

namespace liber::uif {

namespace {

using ctr::axpy;
using ctr::dot;

// The attention path after its linear maps, per sample over its visible slots only:
//   x_i | q_i | k_i | v_i = per_row[rows_i] + per_slot[i]                (gathered in place)
//   p = softmax_j(scale q_i.k_j),  y_i = x_i + sum_j p_ij v_j          (self-attention)
//   w = softmax_i(scale y_i.t),    pooled = sum_i w_i y_i              (target attention)
// As libtorch ops this was a [B, M, 4h] gather, an add and six small bmm's per step (libtorch
// 1.13 runs each bmm as one GEMM per sample), 5-10x a whole backbone step (bench/fuse_bench);
// here each sample's visible rows are gathered into an L1-sized buffer and nothing of size
// [B, M, 4h] is written.
struct PartitionKernels {
  int64_t m, h;  // slots, hidden width
  float scale;   // 1 / sqrt(h)
  const float* per_row;   // [P, 4h]
  const float* per_slot;  // [M, 4h]
  const int64_t* rows;    // [B, M], -1 = empty

  // Sample s's visible slots (into slots) and their inputs (into x, [n, 4h]); returns n.
  int64_t gather(int64_t s, int64_t* slots, float* x) const {
    int64_t n = 0;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t r = rows[s * m + i];
      if (r < 0) continue;
      const float* a = per_row + r * 4 * h;
      const float* b = per_slot + i * 4 * h;
      float* out = x + n * 4 * h;
      for (int64_t c = 0; c < 4 * h; ++c) out[c] = a[c] + b[c];
      slots[n++] = i;
    }
    return n;
  }
  // Part 0..3 (x, query, key, value) of the a-th visible slot in a [n, 4h] buffer.
  const float* at(const float* x, int64_t a, int part) const { return x + (a * 4 + part) * h; }
  float* at(float* x, int64_t a, int part) const { return x + (a * 4 + part) * h; }

  static void softmax(float* v, int64_t n) {
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t a = 0; a < n; ++a) top = std::max(top, v[a]);
    float total = 0;
    for (int64_t a = 0; a < n; ++a) total += v[a] = std::exp(v[a] - top);
    for (int64_t a = 0; a < n; ++a) v[a] /= total;
  }

  // Saved for backward, per sample, compacted to its n visible slots: probs [M, M] (n x n
  // used), y [M, h] (n rows), w [M] (n used). pooled [B, h] is zero-filled by the caller.
  template <int64_t H>
  void forward(const float* tq, float* probs, float* y, float* w, float* pooled, int64_t begin,
               int64_t end) const {
    std::vector<int64_t> vis(static_cast<std::size_t>(m));
    std::vector<float> x(static_cast<std::size_t>(m * 4 * h));
    for (int64_t s = begin; s < end; ++s) {
      const int64_t n = gather(s, vis.data(), x.data());
      float* ys = y + s * m * h;
      float* ws = w + s * m;
      for (int64_t a = 0; a < n; ++a) {
        float* pa = probs + (s * m + a) * m;
        for (int64_t b = 0; b < n; ++b) pa[b] = scale * dot<H>(at(x.data(), a, 1), at(x.data(), b, 2), h);
        softmax(pa, n);
        float* ya = ys + a * h;
        std::copy(at(x.data(), a, 0), at(x.data(), a, 0) + h, ya);
        for (int64_t b = 0; b < n; ++b) axpy<H>(pa[b], at(x.data(), b, 3), ya, h);
        ws[a] = scale * dot<H>(ya, tq + s * h, h);
      }
      softmax(ws, n);
      for (int64_t a = 0; a < n; ++a) axpy<H>(ws[a], ys + a * h, pooled + s * h, h);
    }
  }

  // Adds samples [begin, end)'s gradients into grad_row [P, 4h] and grad_slot [M, 4h], and
  // writes grad_tq [B, h] (zero-filled by the caller).
  template <int64_t H>
  void backward(const float* tq, const float* probs, const float* y, const float* w,
                const float* grad_pooled, float* grad_row, float* grad_slot, float* grad_tq,
                int64_t begin, int64_t end) const {
    std::vector<int64_t> vis(static_cast<std::size_t>(m));
    std::vector<float> x(static_cast<std::size_t>(m * 4 * h)), dx(x.size());
    std::vector<float> dw(static_cast<std::size_t>(m)), dp(static_cast<std::size_t>(m));
    for (int64_t s = begin; s < end; ++s) {
      const int64_t n = gather(s, vis.data(), x.data());
      if (n == 0) continue;
      std::fill(dx.begin(), dx.begin() + n * 4 * h, 0.0f);
      const float* ys = y + s * m * h;
      const float* ws = w + s * m;
      const float* t = tq + s * h;
      const float* dpooled = grad_pooled + s * h;
      // Target attention: dy_a = w_a dpooled + dt_a scale t, dt through the softmax.
      float weighted = 0;
      for (int64_t a = 0; a < n; ++a) {
        dw[a] = dot<H>(dpooled, ys + a * h, h);
        weighted += ws[a] * dw[a];
      }
      for (int64_t a = 0; a < n; ++a) {
        const float dt = ws[a] * (dw[a] - weighted) * scale;
        float* dya = at(dx.data(), a, 0);  // dx_a = dy_a (the residual)
        axpy<H>(ws[a], dpooled, dya, h);
        axpy<H>(dt, t, dya, h);
        axpy<H>(dt, ys + a * h, grad_tq + s * h, h);
      }
      // Self-attention.
      for (int64_t a = 0; a < n; ++a) {
        const float* pa = probs + (s * m + a) * m;
        const float* dya = at(dx.data(), a, 0);
        float dot_p = 0;
        for (int64_t b = 0; b < n; ++b) {
          axpy<H>(pa[b], dya, at(dx.data(), b, 3), h);  // dv_b
          dp[b] = dot<H>(dya, at(x.data(), b, 3), h);
          dot_p += pa[b] * dp[b];
        }
        for (int64_t b = 0; b < n; ++b) {
          const float ds = pa[b] * (dp[b] - dot_p) * scale;
          axpy<H>(ds, at(x.data(), b, 2), at(dx.data(), a, 1), h);  // dq_a
          axpy<H>(ds, at(x.data(), a, 1), at(dx.data(), b, 2), h);  // dk_b
        }
      }
      for (int64_t a = 0; a < n; ++a) {
        const float* d = dx.data() + a * 4 * h;
        axpy<0>(1.0f, d, grad_row + rows[s * m + vis[a]] * 4 * h, 4 * h);
        axpy<0>(1.0f, d, grad_slot + vis[a] * 4 * h, 4 * h);
      }
    }
  }
};

// The whole attention path as one autograd node: as libtorch ops it was a dozen small
// operations and their backward nodes a step (cat, addmm, relu, ...; bench/fuse_bench), each
// a few microseconds of dispatch on a 1,024-sample batch. Here the linear maps are a handful of
// GEMMs on the batch's distinct rows and everything else is PartitionKernels.
//   inputs [U, r]: the frozen table rows the batch shows (no gradient)
//   input (weight [h, r], bias [h]) -> a = relu(.) [U, h]; slot [M, h]
//   query | key | value (weights [h, h], biases [h]) of x = a[row] + slot[i]
//   local [B, M] (index into inputs, -1 = empty), tq [B, h] -> pooled [B, h]
class PartitionFuse : public torch::autograd::Function<PartitionFuse> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& inputs,
                               const torch::Tensor& w_in, const torch::Tensor& b_in,
                               const torch::Tensor& slot, const torch::Tensor& wq,
                               const torch::Tensor& wk, const torch::Tensor& wv,
                               const torch::Tensor& bq, const torch::Tensor& bk,
                               const torch::Tensor& bv, const torch::Tensor& local,
                               const torch::Tensor& tq) {
    const torch::Tensor w_qkv = at::cat({wq, wk, wv});  // [3h, h]
    const torch::Tensor a = at::relu(at::addmm(b_in, inputs, w_in.t()));                    // [U, h]
    const torch::Tensor per_row = at::cat({a, at::addmm(at::cat({bq, bk, bv}), a, w_qkv.t())}, 1);  // [U, 4h]
    const torch::Tensor per_slot = at::cat({slot, at::mm(slot, w_qkv.t())}, 1);                   // [M, 4h]
    const torch::Tensor rows = local.contiguous(), t = tq.contiguous();
    const int64_t b = rows.size(0), m = rows.size(1), h = a.size(1);
    const PartitionKernels k = kernels(per_row, per_slot, rows);
    torch::Tensor probs = torch::empty({b, m, m}, a.options());
    torch::Tensor y = torch::empty({b, m, h}, a.options());
    torch::Tensor w = torch::empty({b, m}, a.options());
    torch::Tensor pooled = torch::zeros({b, h}, a.options());
    const float* tp = t.data_ptr<float>();
    float *pp = probs.data_ptr<float>(), *yp = y.data_ptr<float>(), *wp = w.data_ptr<float>();
    float* op = pooled.data_ptr<float>();
    at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
      ctr::dispatch_width(h, [&]<int64_t H>() { k.forward<H>(tp, pp, yp, wp, op, begin, end); });
    });
    ctx->save_for_backward({inputs, w_qkv, per_row, per_slot, rows, t, probs, y, w});
    return pooled;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &inputs = saved[0], &w_qkv = saved[1], &per_row = saved[2];
    const torch::Tensor &per_slot = saved[3], &rows = saved[4], &tq = saved[5];
    const torch::Tensor &probs = saved[6], &y = saved[7], &w = saved[8];
    const torch::Tensor dpooled = grads[0].contiguous();
    const int64_t b = rows.size(0), h = w_qkv.size(1);
    // a and the slot embedding are the x parts of per_row and per_slot.
    const torch::Tensor a = per_row.narrow(1, 0, h), slot = per_slot.narrow(1, 0, h);
    const PartitionKernels k = kernels(per_row, per_slot, rows);
    // Samples scatter into shared rows: each task adds into its own copy of the gradients,
    // summed after (one task, the usual case here, writes the result directly).
    const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), b / 64));
    torch::Tensor grad_row = torch::zeros({tasks, per_row.size(0), 4 * h}, per_row.options());
    torch::Tensor grad_slot = torch::zeros({tasks, per_slot.size(0), 4 * h}, per_slot.options());
    torch::Tensor grad_tq = torch::zeros_like(tq);
    const float *tp = tq.data_ptr<float>(), *pp = probs.data_ptr<float>();
    const float *yp = y.data_ptr<float>(), *wp = w.data_ptr<float>(), *dp = dpooled.data_ptr<float>();
    float *gr = grad_row.data_ptr<float>(), *gs = grad_slot.data_ptr<float>();
    float* gt = grad_tq.data_ptr<float>();
    at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
      for (int64_t t = first; t < last; ++t)
        ctr::dispatch_width(h, [&]<int64_t H>() {
          k.backward<H>(tp, pp, yp, wp, dp, gr + t * per_row.numel(), gs + t * per_slot.numel(), gt,
                        b * t / tasks, b * (t + 1) / tasks);
        });
    });
    const torch::Tensor g_row = tasks == 1 ? grad_row[0] : grad_row.sum(0);    // [U, 4h]
    const torch::Tensor g_slot = tasks == 1 ? grad_slot[0] : grad_slot.sum(0);  // [M, 4h]
    // Back through the linear maps: x | q | k | v = a | a W_qkv' + b_qkv, per row and per slot.
    const torch::Tensor g_qkv = g_row.narrow(1, h, 3 * h), g_slot_qkv = g_slot.narrow(1, h, 3 * h);
    const torch::Tensor dw_qkv = at::addmm(at::mm(g_qkv.t(), a), g_slot_qkv.t(), slot);  // [3h, h]
    const torch::Tensor db_qkv = g_qkv.sum(0);
    const torch::Tensor dslot = at::addmm(g_slot.narrow(1, 0, h), g_slot_qkv, w_qkv);
    torch::Tensor da = at::addmm(g_row.narrow(1, 0, h), g_qkv, w_qkv);  // [U, h]
    da.mul_(a.gt(0));                                                    // ReLU
    const torch::Tensor dw_in = at::mm(da.t(), inputs), db_in = da.sum(0);
    const auto dw = dw_qkv.split(h), db = db_qkv.split(h);
    return {torch::Tensor(), dw_in, db_in, dslot, dw[0], dw[1], dw[2], db[0], db[1], db[2],
            torch::Tensor(), grad_tq};
  }

 private:
  static PartitionKernels kernels(const torch::Tensor& per_row, const torch::Tensor& per_slot,
                                  const torch::Tensor& rows) {
    const int64_t h = per_row.size(1) / 4;
    return {rows.size(1), h, static_cast<float>(1.0 / std::sqrt(static_cast<double>(h))),
            per_row.data_ptr<float>(), per_slot.data_ptr<float>(), rows.data_ptr<int64_t>()};
  }
};

// The distinct table rows a batch shows, in first-seen order: rows [B, M] (-1 = empty) ->
// used [U], local [B, M] (index into used, -1 = empty), present [B, 1] (any visible slot).
// Open addressing over twice the visible slots, so the cost is the batch's, not the
// table's (torch::_unique cost 1.6 ms of a 15 ms fuse step).
struct VisibleRows {
  torch::Tensor used, local, present;
};

VisibleRows visible_rows(const torch::Tensor& rows) {
  const torch::Tensor r = rows.contiguous();
  const int64_t b = r.size(0), m = r.size(1);
  const int64_t* rp = r.data_ptr<int64_t>();
  std::size_t cap = 16;
  while (cap < 2 * static_cast<std::size_t>(b * m)) cap <<= 1;
  std::vector<int64_t> keys(cap, -1), index(cap);
  std::vector<int64_t> used;
  VisibleRows out{{}, torch::empty({b, m}, torch::kLong), torch::empty({b, 1}, torch::kBool)};
  int64_t* lp = out.local.data_ptr<int64_t>();
  bool* pp = out.present.data_ptr<bool>();
  for (int64_t s = 0; s < b; ++s) {
    bool any = false;
    for (int64_t i = s * m; i < (s + 1) * m; ++i) {
      const int64_t row = rp[i];
      lp[i] = -1;
      if (row < 0) continue;
      any = true;
      std::size_t h = static_cast<std::size_t>((static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
      while (keys[h] != -1 && keys[h] != row) h = (h + 1) & (cap - 1);
      if (keys[h] == -1) {
        keys[h] = row;
        index[h] = static_cast<int64_t>(used.size());
        used.push_back(row);
      }
      lp[i] = index[h];
    }
    pp[s] = any;
  }
  out.used = torch::tensor(used, torch::kLong);
  return out;
}

}  // namespace

torch::Tensor reduce_vectors(const torch::Tensor& vectors, int64_t k) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = vectors.to(torch::kDouble);
  const int64_t n = x.size(0), w = x.size(1);
  if (k <= 0 || k >= w) return vectors.to(torch::kFloat).contiguous().clone();  // owns its memory
  k = std::min<int64_t>(k, std::max<int64_t>(n - 1, 1));
  x = x - x.mean(0, /*keepdim=*/true);
  torch::Tensor values;
  torch::Tensor top = principal_directions(x, k, &values);
  torch::Tensor scale = values.clamp_min(1e-12).sqrt();
  return (x.mm(top) / scale).to(torch::kFloat).contiguous();
}

torch::Tensor principal_directions(const torch::Tensor& centred, int64_t k, torch::Tensor* variances) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = centred.to(torch::kDouble);
  const int64_t n = x.size(0), w = x.size(1);
  k = std::clamp<int64_t>(k <= 0 ? w : k, 1, w);
  // Eigen-decomposition of the w x w covariance (w is the encoder width, ~1e3), in double
  // so the result does not depend on summation order.
  torch::Tensor cov = x.t().mm(x) / static_cast<double>(std::max<int64_t>(n - 1, 1));
  auto [values, vectors_] = torch::linalg::eigh(cov, "L");  // ascending
  torch::Tensor top = vectors_.narrow(1, w - k, k).flip({1});
  // Eigenvectors are defined up to sign: fix it (largest |component| positive) so equal
  // inputs give equal tables across runs and machines.
  torch::Tensor idx = top.abs().argmax(0);
  torch::Tensor sign = top.gather(0, idx.unsqueeze(0)).sign().clamp_min(0) * 2 - 1;
  if (variances) *variances = values.narrow(0, w - k, k).flip({0});
  return top * sign;
}

// Throws Error(Config) for settings the layer cannot run with.
static void check_config(const FuseConfig& c) {
  if (c.fusion != "attention" && c.fusion != "mean")
    throw Error(ErrorKind::Config, fmt::format("unknown fusion '{}' (attention | mean)", c.fusion));
  if (c.slots <= 0 || c.hidden <= 0 || c.fused_dim <= 0)
    throw Error(ErrorKind::Config, "fuse layer: slots, hidden and fused_dim must be positive");
  if (c.query != "item" && c.query != "text" && c.query != "both")
    throw Error(ErrorKind::Config, fmt::format("unknown query '{}' (item | text | both)", c.query));
  if (c.query != "item" && c.fusion != "attention")
    throw Error(ErrorKind::Config, "fuse layer: a text query needs attention fusion");
}

// Frozen item text vectors as a tensor view (no copy: the plug's vector outlives the module).
static torch::Tensor view_of(const std::shared_ptr<const std::vector<float>>& v, int64_t width) {
  const auto n = static_cast<int64_t>(v->size()) / width;
  return torch::from_blob(const_cast<float*>(v->data()), {n, width}, torch::kFloat);
}

FuseLayerImpl::FuseLayerImpl(const FuseTable& t, const FuseConfig& in, int64_t query_dim)
    : attention_(in.fusion == "attention"),
      item_query_(in.query != "text"),
      text_query_(in.query != "item"),
      interaction_(in.interaction && in.fusion == "attention"),
      similarity_(in.similarity),
      needs_items_(in.needs_item_texts()),
      slots_(in.slots),
      hidden_(in.hidden),
      fused_dim_(in.fused_dim) {
  check_config(in);
  if (t.width <= 0 || !t.vectors)
    throw Error(ErrorKind::InvalidInput, "fuse layer: no interest vectors attached");
  const auto rows = static_cast<int64_t>(t.vectors->size()) / t.width;
  if (rows * t.width != static_cast<int64_t>(t.vectors->size()))
    throw Error(ErrorKind::InvalidInput, "fuse layer: vector table size is not rows x width");
  torch::Tensor raw =
      torch::from_blob(const_cast<float*>(t.vectors->data()), {rows, t.width}, torch::kFloat);
  table = register_buffer("table", reduce_vectors(raw, in.reduced_dim));
  const int64_t r = table.size(1);

  input_ = register_module("input", torch::nn::Linear(r, hidden_));
  ctr::init_linear(input_);
  slot_embedding_ = register_parameter("slot_embedding", torch::zeros({slots_, hidden_}));
  if (attention_) {
    query_ = register_module("query", torch::nn::Linear(hidden_, hidden_));
    key_ = register_module("key", torch::nn::Linear(hidden_, hidden_));
    value_ = register_module("value", torch::nn::Linear(hidden_, hidden_));
    target_ = register_module("target", torch::nn::Linear(query_dim, hidden_));
    for (auto* l : {&query_, &key_, &value_, &target_}) ctr::init_linear(*l);
  }
  if (needs_items_ && (!t.item_vectors || t.item_width <= 0 ||
                      t.item_vectors->size() % static_cast<std::size_t>(t.item_width) != 0))
    throw Error(ErrorKind::InvalidInput,
                "fuse layer: a text query or similarity needs the item text vectors");
  if (text_query_) {
    item_table = register_buffer("item_table",
                                 reduce_vectors(view_of(t.item_vectors, t.item_width), in.reduced_dim));
    text_target_ = register_module("text_target", torch::nn::Linear(item_table.size(1), hidden_));
    ctr::init_linear(text_target_);
  }
  int64_t out_in = interaction_ ? 2 * hidden_ : hidden_;
  if (similarity_) {
    texts_ = t.texts;
    if (texts_ < 1 || t.width != texts_ * t.item_width)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("fuse layer: similarity needs rows of whole text vectors ({} wide "
                              "rows, {} texts of {})",
                              t.width, texts_, t.item_width));
    // Cosines in the item texts' principal subspace (centred on the mean item, top
    // reduced_dim directions, not whitened): the full 384-d gather per slot cost 4x the
    // backbone's step on 2 cores; 64 directions keep the ranking of the cosines.
    torch::NoGradGuard frozen;
    torch::Tensor items = view_of(t.item_vectors, t.item_width).to(torch::kDouble);
    torch::Tensor mean = items.mean(0, /*keepdim=*/true);
    torch::Tensor basis = principal_directions(items - mean, in.reduced_dim);  // [d, k]
    auto unit = [](const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-8); };
    item_unit_ = unit((items - mean).mm(basis)).to(torch::kFloat).contiguous();
    torch::Tensor chunks = raw.view({rows * texts_, t.item_width}).to(torch::kDouble);
    row_unit_ = unit((chunks - mean).mm(basis)).to(torch::kFloat).view({rows, texts_, -1}).contiguous();
    out_in += slots_ * texts_;
  }
  output_ = register_module("output", torch::nn::Linear(out_in, fused_dim_));
  ctr::init_linear(output_);
  no_history_ = register_parameter("no_history", torch::zeros({fused_dim_}));
}

torch::Tensor FuseLayerImpl::forward(const ctr::Batch& batch, const torch::Tensor& target) {
  if (!needs_items_) return fuse(batch.side, target);
  return fuse(batch.side.narrow(1, 0, slots_), target, batch.side.select(1, slots_));
}

torch::Tensor FuseLayerImpl::similarities(const torch::Tensor& rows, const torch::Tensor& items) const {
  // Both sides are fixed vectors: nothing to learn here, no graph. One dot product per
  // visible (slot, text) straight from the frozen tables: gathering [B, M, texts, k] first
  // and multiplying cost 8 ms of a 9 ms DeepFM step (fuse_bench), this a fraction of one.
  const int64_t b = rows.size(0), k = item_unit_.size(1), per_row = texts_ * k;
  torch::Tensor out = torch::zeros({b, slots_ * texts_});
  const torch::Tensor r = rows.contiguous(), it = items.contiguous();
  const int64_t* rp = r.data_ptr<int64_t>();
  const int64_t* ip = it.data_ptr<int64_t>();
  const float* ru = row_unit_.data_ptr<float>();
  const float* iu = item_unit_.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, b, 64, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      if (ip[s] < 0) continue;
      const float* target = iu + ip[s] * k;
      for (int64_t m = 0; m < slots_; ++m) {
        const int64_t row = rp[s * slots_ + m];
        if (row < 0) continue;
        for (int64_t t = 0; t < texts_; ++t)
          op[(s * slots_ + m) * texts_ + t] = ctr::dot<0>(ru + row * per_row + t * k, target, k);
      }
    }
  });
  return out;
}

torch::Tensor FuseLayerImpl::fuse(const torch::Tensor& rows, const torch::Tensor& query,
                                  const torch::Tensor& items) {
  const int64_t b = rows.size(0);
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) == slots_, "fuse layer: rows must be [B, slots]");
  // A slot's input is x = relu(input(row)) + slot_embedding[slot]. Every linear map of x
  // splits into a per-row part and a per-slot part, so the maps run once per distinct table
  // row of the batch (U <= B x M, and independent of the table's size) and each slot gathers.
  const VisibleRows visible = visible_rows(rows);
  torch::Tensor inputs;
  {
    torch::NoGradGuard frozen;  // the table is a buffer: nothing flows back into it
    inputs = table.index_select(0, visible.used);  // [U, r]
  }
  torch::Tensor pooled;
  if (visible.used.numel() == 0) {  // no sample of the batch has a visible partition
    pooled = torch::zeros({b, interaction_ ? 2 * hidden_ : hidden_});
  } else if (attention_) {
    // The target query in the hidden space: learned embedding, text vector, or both.
    torch::Tensor tq;
    if (item_query_) tq = target_(query);
    if (text_query_) {
      TORCH_CHECK(items.defined() && items.size(0) == b, "fuse layer: a text query needs items");
      torch::Tensor has = items.ge(0).to(torch::kFloat).unsqueeze(1);                 // [B, 1]
      torch::Tensor text = text_target_(item_table.index_select(0, items.clamp_min(0))) * has;
      tq = tq.defined() ? tq + text : text;
    }
    pooled = PartitionFuse::apply(inputs, input_->weight, input_->bias, slot_embedding_,
                                  query_->weight, key_->weight, value_->weight, query_->bias,
                                  key_->bias, value_->bias, visible.local, tq);  // [B, h]
    if (interaction_) pooled = torch::cat({pooled, pooled * tq}, 1);
  } else {
    torch::Tensor a = torch::relu(input_(inputs));  // [U, h]
    torch::Tensor x = ctr::gather_rows(a, visible.local.clamp_min(0).reshape(-1)).view({b, slots_, hidden_});
    torch::Tensor maskf = visible.local.ge(0).to(torch::kFloat).unsqueeze(-1);  // [B, M, 1]
    pooled = ((x + slot_embedding_) * maskf).sum(1) / maskf.sum(1).clamp_min(1.0);
  }
  if (similarity_) {
    TORCH_CHECK(items.defined() && items.size(0) == b, "fuse layer: similarity needs items");
    pooled = torch::cat({pooled, similarities(rows, items)}, 1);
  }
  // A sample with no visible partition gets the learned no-history vector instead.
  return torch::where(visible.present, output_(pooled), no_history_);  // [B, fused]
}

namespace {

class FuseLayerFactory final : public ctr::SideInputFactory {
 public:
  FuseLayerFactory(FuseTable table, FuseConfig config)
      : table_(std::move(table)), config_(std::move(config)) {}
  std::shared_ptr<ctr::SideInputModule> make(int64_t dim) const override {
    return std::make_shared<FuseLayerImpl>(table_, config_, dim);
  }
  bool needs_target() const override { return true; }

 private:
  FuseTable table_;
  FuseConfig config_;
};

}  // namespace

SideInputPlug fuse_plug(const FuseTable& table, const FuseConfig& config) {
  check_config(config);
  if (table.width <= 0 || !table.vectors || table.vectors->size() % table.width != 0)
    throw Error(ErrorKind::InvalidInput, "fuse layer: vector table size is not rows x width");
  const bool text = config.needs_item_texts();
  if (text && (!table.item_vectors || table.item_width <= 0))
    throw Error(ErrorKind::InvalidInput,
                fmt::format("fuse layer: query '{}'{} needs the item text vectors (liber "
                            "encode makes them)",
                            config.query, config.similarity ? " with similarity" : ""));
  SideInputPlug plug;
  plug.name = "liber";
  plug.width = config.slots + (text ? 1 : 0);
  plug.lower = -1;
  plug.upper = static_cast<int32_t>(table.vectors->size() / static_cast<std::size_t>(table.width));
  if (text)
    plug.upper = std::max(plug.upper, static_cast<int32_t>(table.item_vectors->size() /
                                                           static_cast<std::size_t>(table.item_width)));
  plug.factory = std::make_shared<FuseLayerFactory>(table, config);
  return plug;
}

}  // namespace liber::uif

namespace liber {

SideInputPlug fuse_plug(const InterestTable& table, const FuseConfig& config,
                        const ItemTextTable* items) {
  uif::FuseTable t{std::make_shared<const std::vector<float>>(table.rows), table.width(), {}, 0,
                   table.texts};
  if (items && items->dim > 0) {
    t.item_vectors = std::make_shared<const std::vector<float>>(items->rows);
    t.item_width = items->dim;
  }
  return uif::fuse_plug(t, config);
}

}  // namespace liber
