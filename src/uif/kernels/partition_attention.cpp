// The fuse layer's attention path as one autograd node (partition_attention in
// src/include/liber/uif/kernels.h): the per-row linear maps, then self- and target attention
// per sample over its visible partitions.
#include "liber/uif/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "liber/ctr/vector_ops.h"

namespace liber::uif {

namespace {

using ctr::axpy;
using ctr::dot;
using ctr::lanes;
using ctr::Lanes;

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
  template <int64_t H>
  int64_t gather(int64_t s, int64_t* slots, float* x) const {
    int64_t n = 0;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t r = rows[s * m + i];
      if (r < 0) continue;
      const float* a = per_row + r * 4 * h;
      const float* b = per_slot + i * 4 * h;
      float* out = x + n * 4 * h;
      if constexpr (H > 0) {
        lanes<4 * H>(out) = lanes<4 * H>(a) + lanes<4 * H>(b);
      } else {
        for (int64_t c = 0; c < 4 * h; ++c) out[c] = a[c] + b[c];
      }
      slots[n++] = i;
    }
    return n;
  }
  // Asks for sample s's rows (the next sample's, while one is computed).
  void prefetch_rows(int64_t s, int64_t end) const {
    if (s >= end) return;
    for (int64_t i = 0; i < m; ++i)
      if (rows[s * m + i] >= 0) ctr::prefetch(per_row + rows[s * m + i] * 4 * h, 16 * h);
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
  LIBER_ISA_CLONES void forward(const float* tq, float* probs, float* y, float* w, float* pooled,
                                int64_t begin, int64_t end) const {
    std::vector<int64_t> vis(static_cast<std::size_t>(m));
    std::vector<float> x(static_cast<std::size_t>(m * 4 * h));
    for (int64_t s = begin; s < end; ++s) {
      prefetch_rows(s + 1, end);
      const int64_t n = gather<H>(s, vis.data(), x.data());
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
  LIBER_ISA_CLONES void backward(const float* tq, const float* probs, const float* y,
                                 const float* w, const float* grad_pooled, float* grad_row,
                                 float* grad_slot, float* grad_tq, int64_t begin,
                                 int64_t end) const {
    std::vector<int64_t> vis(static_cast<std::size_t>(m));
    std::vector<float> x(static_cast<std::size_t>(m * 4 * h)), dx(x.size());
    std::vector<float> dw(static_cast<std::size_t>(m)), dp(static_cast<std::size_t>(m));
    for (int64_t s = begin; s < end; ++s) {
      prefetch_rows(s + 1, end);
      const int64_t n = gather<H>(s, vis.data(), x.data());
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
        axpy<4 * H>(1.0f, d, grad_row + rows[s * m + vis[a]] * 4 * h, 4 * h);
        axpy<4 * H>(1.0f, d, grad_slot + vis[a] * 4 * h, 4 * h);
      }
    }
  }
};

// The linear maps of the attention path, per distinct table row u (and per slot):
//   a_u = relu(W_in x_u + b_in)             (rows only; a slot's a is its embedding)
//   out_u = a_u | W_qkv a_u + b_qkv          [4h]: the x, query, key and value parts
// As GEMMs these shapes ([U, 64] x [64, 16], [U, 16] x [16, 48] and their backward) ran at a
// quarter of the core's speed, a third of the fuse layer's step (bench/fuse_bench). Here a
// length-h vector is one value (Lanes) and RB rows go together, so that each weight row is
// loaded once for RB independent multiply-adds. Weights arrive transposed ([r, h], [h, 3h])
// so that every vector runs along h.
template <int64_t H, int RB>
__attribute__((always_inline)) inline void map_block(const float* x, const int64_t* idx,
                                                     int64_t u0, int64_t r,
                                                     const float* w_in_t, const float* b_in,
                                                     const float* w_qkv_t, const float* b_qkv,
                                                     float* out) {
  using V = typename Lanes<H>::type;
  const V zero = {};
  V a[RB], q[RB], k[RB], v[RB];
  const float* xr[RB];  // row u's input: x[idx[u]] ([r]), or x[u] ([h]) without the input map
  for (int i = 0; i < RB; ++i) xr[i] = x + (idx ? idx[u0 + i] : u0 + i) * (w_in_t ? r : H);
  for (int i = 0; i < RB; ++i) a[i] = w_in_t ? lanes<H>(b_in) : lanes<H>(xr[i]);
  if (w_in_t) {
    for (int64_t j = 0; j < r; ++j) {
      const V w = lanes<H>(w_in_t + j * H);
      for (int i = 0; i < RB; ++i) a[i] += xr[i][j] * w;
    }
    for (int i = 0; i < RB; ++i) a[i] = a[i] > zero ? a[i] : zero;
  }
  // a's lanes are read back from memory below: a broadcast load, not a register shuffle.
  for (int i = 0; i < RB; ++i) lanes<H>(out + (u0 + i) * 4 * H) = a[i];
  for (int i = 0; i < RB; ++i) {
    q[i] = b_qkv ? lanes<H>(b_qkv) : zero;
    k[i] = b_qkv ? lanes<H>(b_qkv + H) : zero;
    v[i] = b_qkv ? lanes<H>(b_qkv + 2 * H) : zero;
  }
  for (int64_t c = 0; c < H; ++c) {
    const float* w = w_qkv_t + c * 3 * H;
    const V wq = lanes<H>(w), wk = lanes<H>(w + H), wv = lanes<H>(w + 2 * H);
    for (int i = 0; i < RB; ++i) {
      const float ac = out[(u0 + i) * 4 * H + c];
      q[i] += ac * wq, k[i] += ac * wk, v[i] += ac * wv;
    }
  }
  for (int i = 0; i < RB; ++i) {
    float* o = out + (u0 + i) * 4 * H;
    lanes<H>(o + H) = q[i], lanes<H>(o + 2 * H) = k[i], lanes<H>(o + 3 * H) = v[i];
  }
}

// Rows x[idx[u]] for u in [0, n) (x[u] without idx; [., r], or [., h] taken as a without
// w_in_t) -> out [n, 4h]. H = 0: any h, plain loops.
template <int64_t H>
LIBER_ISA_CLONES void map_rows(const float* x, const int64_t* idx, int64_t n, int64_t r,
                               const float* w_in_t,
                               const float* b_in, const float* w_qkv_t, const float* b_qkv,
                               int64_t h, float* out) {
  if constexpr (H > 0) {
    int64_t u = 0;
    for (; u + 4 <= n; u += 4) {
      if (idx)  // the next block's rows
        for (int64_t i = u + 4; i < std::min(u + 8, n); ++i) ctr::prefetch(x + idx[i] * r, r * 4);
      map_block<H, 4>(x, idx, u, r, w_in_t, b_in, w_qkv_t, b_qkv, out);
    }
    for (; u < n; ++u) map_block<H, 1>(x, idx, u, r, w_in_t, b_in, w_qkv_t, b_qkv, out);
  } else {
    for (int64_t u = 0; u < n; ++u) {
      float* a = out + u * 4 * h;
      float* qkv = a + h;
      const float* xu = x + (idx ? idx[u] : u) * (w_in_t ? r : h);
      if (w_in_t) {
        for (int64_t c = 0; c < h; ++c) a[c] = b_in[c];
        for (int64_t k = 0; k < r; ++k)
          for (int64_t c = 0; c < h; ++c) a[c] += xu[k] * w_in_t[k * h + c];
        for (int64_t c = 0; c < h; ++c) a[c] = std::max(a[c], 0.0f);
      } else {
        std::copy(xu, xu + h, a);
      }
      for (int64_t j = 0; j < 3 * h; ++j) qkv[j] = b_qkv ? b_qkv[j] : 0;
      for (int64_t c = 0; c < h; ++c)
        for (int64_t j = 0; j < 3 * h; ++j) qkv[j] += a[c] * w_qkv_t[c * 3 * h + j];
    }
  }
}

// The gradients of a map_rows output, accumulated by the backward below.
template <int64_t H>
struct RowGrads {
  typename Lanes<H>::type b_in{}, bq{}, bk{}, bv{};
};

template <int64_t H, int RB>
__attribute__((always_inline)) inline void map_back_block(
    const float* x, const int64_t* idx, int64_t u0, int64_t r, const float* out, const float* grad,
    const float* w_qkv,
    bool input_map, float* d_w_in_t, float* d_w_qkv_t, float* d_x, RowGrads<H>& acc) {
  using V = typename Lanes<H>::type;
  const V zero = {};
  V a[RB], gq[RB], gk[RB], gv[RB], da[RB];
  for (int i = 0; i < RB; ++i) {
    const float* g = grad + (u0 + i) * 4 * H;
    a[i] = lanes<H>(out + (u0 + i) * 4 * H);
    da[i] = lanes<H>(g);  // the x part (the residual)
    gq[i] = lanes<H>(g + H), gk[i] = lanes<H>(g + 2 * H), gv[i] = lanes<H>(g + 3 * H);
    acc.bq += gq[i], acc.bk += gk[i], acc.bv += gv[i];
  }
  for (int64_t c = 0; c < H; ++c) {
    float* d = d_w_qkv_t + c * 3 * H;
    V dq = lanes<H>(d), dk = lanes<H>(d + H), dv = lanes<H>(d + 2 * H);
    for (int i = 0; i < RB; ++i) {
      const float ac = out[(u0 + i) * 4 * H + c];  // a broadcast load (see map_block)
      dq += ac * gq[i], dk += ac * gk[i], dv += ac * gv[i];
    }
    lanes<H>(d) = dq, lanes<H>(d + H) = dk, lanes<H>(d + 2 * H) = dv;
  }
  for (int64_t j = 0; j < 3 * H; ++j) {
    const V w = lanes<H>(w_qkv + j * H);
    for (int i = 0; i < RB; ++i) da[i] += grad[(u0 + i) * 4 * H + H + j] * w;
  }
  if (!input_map) {
    for (int i = 0; i < RB; ++i) lanes<H>(d_x + (u0 + i) * H) = da[i];
    return;
  }
  for (int i = 0; i < RB; ++i) {
    da[i] = a[i] > zero ? da[i] : zero;  // ReLU
    acc.b_in += da[i];
  }
  const float* xr[RB];
  for (int i = 0; i < RB; ++i) xr[i] = x + (idx ? idx[u0 + i] : u0 + i) * r;
  for (int64_t j = 0; j < r; ++j) {
    V d = lanes<H>(d_w_in_t + j * H);
    for (int i = 0; i < RB; ++i) d += xr[i][j] * da[i];
    lanes<H>(d_w_in_t + j * H) = d;
  }
}

// The backward of map_rows, given each row's forward output `out` and its gradient `grad`
// (both [n, 4h]): adds into d_w_qkv_t [h, 3h] and d_b_qkv [3h] (when given), and with the
// input map into d_w_in_t [r, h] and d_b_in [h]; without it writes d_x [n, h].
template <int64_t H>
LIBER_ISA_CLONES void map_rows_backward(const float* x, const int64_t* idx, int64_t n, int64_t r,
                                        const float* out,
                                        const float* grad, const float* w_qkv, int64_t h,
                                        bool input_map, float* d_w_in_t, float* d_b_in,
                                        float* d_w_qkv_t, float* d_b_qkv, float* d_x) {
  if constexpr (H > 0) {
    RowGrads<H> acc;
    int64_t u = 0;
    for (; u + 4 <= n; u += 4) {
      if (idx)  // the next block's rows
        for (int64_t i = u + 4; i < std::min(u + 8, n); ++i) ctr::prefetch(x + idx[i] * r, r * 4);
      map_back_block<H, 4>(x, idx, u, r, out, grad, w_qkv, input_map, d_w_in_t, d_w_qkv_t, d_x,
                           acc);
    }
    for (; u < n; ++u)
      map_back_block<H, 1>(x, idx, u, r, out, grad, w_qkv, input_map, d_w_in_t, d_w_qkv_t, d_x,
                           acc);
    if (d_b_qkv) {
      lanes<H>(d_b_qkv) += acc.bq;
      lanes<H>(d_b_qkv + H) += acc.bk;
      lanes<H>(d_b_qkv + 2 * H) += acc.bv;
    }
    if (input_map) lanes<H>(d_b_in) += acc.b_in;
  } else {
    std::vector<float> da(static_cast<std::size_t>(h));
    for (int64_t u = 0; u < n; ++u) {
      const float* a = out + u * 4 * h;
      const float* g = grad + u * 4 * h + h;  // the query, key and value parts
      for (int64_t c = 0; c < h; ++c)
        for (int64_t j = 0; j < 3 * h; ++j) d_w_qkv_t[c * 3 * h + j] += a[c] * g[j];
      if (d_b_qkv)
        for (int64_t j = 0; j < 3 * h; ++j) d_b_qkv[j] += g[j];
      for (int64_t c = 0; c < h; ++c) da[c] = grad[u * 4 * h + c];
      for (int64_t j = 0; j < 3 * h; ++j)
        for (int64_t c = 0; c < h; ++c) da[c] += g[j] * w_qkv[j * h + c];
      if (!input_map) {
        std::copy(da.begin(), da.end(), d_x + u * h);
        continue;
      }
      for (int64_t c = 0; c < h; ++c) {
        if (a[c] <= 0) da[c] = 0;  // ReLU
        d_b_in[c] += da[c];
      }
      const float* xu = x + (idx ? idx[u] : u) * r;
      for (int64_t k = 0; k < r; ++k)
        for (int64_t c = 0; c < h; ++c) d_w_in_t[k * h + c] += xu[k] * da[c];
    }
  }
}

// The whole attention path as one autograd node: as libtorch ops it was a dozen small
// operations and their backward nodes a step (index_select, cat, addmm, relu, ...;
// bench/fuse_bench), each a few microseconds of dispatch on a 1,024-sample batch. Here the
// linear maps run once per distinct table row of the batch (map_rows) and everything else is
// PartitionKernels.
//   table [P, r] frozen (no gradient), used [U]: the rows the batch shows
//   input (weight [h, r], bias [h]) -> a = relu(.) [U, h]; slot [M, h]
//   qkv (weight [3h, h], bias [3h]): query | key | value of x = a[row] + slot[i]
//   local [B, M] (index into used, -1 = empty), tq [B, h] -> pooled [B, h]
class PartitionFuse : public torch::autograd::Function<PartitionFuse> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& table,
                               const torch::Tensor& used, const torch::Tensor& w_in,
                               const torch::Tensor& b_in, const torch::Tensor& slot,
                               const torch::Tensor& w_qkv, const torch::Tensor& b_qkv,
                               const torch::Tensor& local, const torch::Tensor& tq) {
    const torch::Tensor x = table.contiguous(), s = slot.contiguous(), b_in_c = b_in.contiguous();
    const torch::Tensor w_in_t = w_in.t().contiguous(), w_qkv_t = w_qkv.t().contiguous();
    const torch::Tensor b_qkv_c = b_qkv.contiguous();
    const int64_t u = used.size(0), r = x.size(1), h = w_in.size(0), m_slots = s.size(0);
    torch::Tensor per_row = torch::empty({u, 4 * h}, x.options());        // a | a W_qkv' + b_qkv
    torch::Tensor per_slot = torch::empty({m_slots, 4 * h}, x.options());  // slot | slot W_qkv'
    ctr::dispatch_width(h, [&]<int64_t H>() {
      map_rows<H>(x.data_ptr<float>(), used.data_ptr<int64_t>(), u, r, w_in_t.data_ptr<float>(),
                  b_in_c.data_ptr<float>(), w_qkv_t.data_ptr<float>(), b_qkv_c.data_ptr<float>(), h,
                  per_row.data_ptr<float>());
      map_rows<H>(s.data_ptr<float>(), nullptr, m_slots, h, nullptr, nullptr,
                  w_qkv_t.data_ptr<float>(), nullptr, h, per_slot.data_ptr<float>());
    });
    const torch::Tensor rows = local.contiguous(), t = tq.contiguous();
    const int64_t b = rows.size(0), m = rows.size(1);
    const PartitionKernels k = kernels(per_row, per_slot, rows);
    torch::Tensor probs = torch::empty({b, m, m}, x.options());
    torch::Tensor y = torch::empty({b, m, h}, x.options());
    torch::Tensor w = torch::empty({b, m}, x.options());
    torch::Tensor pooled = torch::zeros({b, h}, x.options());
    const float* tp = t.data_ptr<float>();
    float *pp = probs.data_ptr<float>(), *yp = y.data_ptr<float>(), *wp = w.data_ptr<float>();
    float* op = pooled.data_ptr<float>();
    at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
      ctr::dispatch_width(h, [&]<int64_t H>() { k.forward<H>(tp, pp, yp, wp, op, begin, end); });
    });
    ctx->save_for_backward({x, used, w_qkv, per_row, per_slot, rows, t, probs, y, w});
    return pooled;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &table = saved[0], &used = saved[1], &w_qkv = saved[2];
    const torch::Tensor &per_row = saved[3], &per_slot = saved[4], &rows = saved[5];
    const torch::Tensor &tq = saved[6], &probs = saved[7], &y = saved[8], &w = saved[9];
    const torch::Tensor dpooled = grads[0].contiguous();
    const int64_t b = rows.size(0), h = w_qkv.size(1);
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
    const int64_t u = used.size(0), r = table.size(1), m_slots = per_slot.size(0);
    const torch::Tensor w_qkv_c = w_qkv.contiguous();
    const auto options = table.options();
    torch::Tensor dw_in_t = torch::zeros({r, h}, options), db_in = torch::zeros({h}, options);
    torch::Tensor dw_qkv_t = torch::zeros({h, 3 * h}, options);
    torch::Tensor db_qkv = torch::zeros({3 * h}, options);
    torch::Tensor dslot = torch::empty({m_slots, h}, options);
    ctr::dispatch_width(h, [&]<int64_t H>() {
      map_rows_backward<H>(table.data_ptr<float>(), used.data_ptr<int64_t>(), u, r,
                           per_row.data_ptr<float>(), g_row.data_ptr<float>(),
                           w_qkv_c.data_ptr<float>(), h, true, dw_in_t.data_ptr<float>(),
                           db_in.data_ptr<float>(), dw_qkv_t.data_ptr<float>(),
                           db_qkv.data_ptr<float>(), nullptr);
      map_rows_backward<H>(nullptr, nullptr, m_slots, h, per_slot.data_ptr<float>(),
                           g_slot.data_ptr<float>(), w_qkv_c.data_ptr<float>(), h, false, nullptr,
                           nullptr, dw_qkv_t.data_ptr<float>(), nullptr, dslot.data_ptr<float>());
    });
    return {torch::Tensor(), torch::Tensor(), dw_in_t.t().contiguous(), db_in, dslot,
            dw_qkv_t.t().contiguous(), db_qkv, torch::Tensor(), grad_tq};
  }

 private:
  static PartitionKernels kernels(const torch::Tensor& per_row, const torch::Tensor& per_slot,
                                  const torch::Tensor& rows) {
    const int64_t h = per_row.size(1) / 4;
    return {rows.size(1), h, static_cast<float>(1.0 / std::sqrt(static_cast<double>(h))),
            per_row.data_ptr<float>(), per_slot.data_ptr<float>(), rows.data_ptr<int64_t>()};
  }
};

}  // namespace

torch::Tensor partition_attention(const torch::Tensor& table, const torch::Tensor& used,
                                  const torch::Tensor& w_in, const torch::Tensor& b_in,
                                  const torch::Tensor& slot, const torch::Tensor& w_qkv,
                                  const torch::Tensor& b_qkv, const torch::Tensor& local,
                                  const torch::Tensor& tq) {
  return PartitionFuse::apply(table, used, w_in, b_in, slot, w_qkv, b_qkv, local, tq);
}

}  // namespace liber::uif
