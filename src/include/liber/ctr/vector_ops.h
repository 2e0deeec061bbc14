// Small-vector kernels shared by fused attention layers (AutoInt's interacting layer, and
// side-input modules built on ctr): per-sample attention over a few rows of width 8-64, where libtorch
// 1.13's batched matmuls run one tiny GEMM per batch entry.
#pragma once

#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace liber::ctr {

// Length-N vector kernels; N > 0 fixes the length at compile time (unrolled), N = 0 takes
// it at run time. Explicit SSE: GCC does not vectorize these once inlined into the strided
// attention loops (it cannot prove the rows apart).
template <int64_t N>
inline float dot(const float* x, const float* y, int64_t n) {
  const int64_t len = N > 0 ? N : n;
  int64_t i = 0;
  float sum = 0;
#if defined(__SSE2__)
  __m128 acc = _mm_setzero_ps();
  for (; i + 4 <= len; i += 4) acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, acc);
  sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
  for (; i < len; ++i) sum += x[i] * y[i];
  return sum;
}

// y += a * x
template <int64_t N>
inline void axpy(float a, const float* x, float* y, int64_t n) {
  const int64_t len = N > 0 ? N : n;
  int64_t i = 0;
#if defined(__SSE2__)
  const __m128 av = _mm_set1_ps(a);
  for (; i + 4 <= len; i += 4)
    _mm_storeu_ps(y + i, _mm_add_ps(_mm_loadu_ps(y + i), _mm_mul_ps(av, _mm_loadu_ps(x + i))));
#endif
  for (; i < len; ++i) y[i] += a * x[i];
}

// Runs fn.template operator()<N>() with N = n for the common widths, else N = 0.
template <typename Fn>
void dispatch_width(int64_t n, Fn&& fn) {
  switch (n) {
    case 8: fn.template operator()<8>(); break;
    case 16: fn.template operator()<16>(); break;
    case 32: fn.template operator()<32>(); break;
    case 64: fn.template operator()<64>(); break;
    default: fn.template operator()<0>(); break;
  }
}

}  // namespace liber::ctr
