// Small-vector kernels shared by fused attention layers (AutoInt's interacting layer, and
// side-input modules built on ctr): per-sample attention over a few rows of width 8-64, where libtorch
// 1.13's batched matmuls run one tiny GEMM per batch entry.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Per-ISA copies of a kernel, chosen once at load time (GCC's ifunc): the Lanes vectors
// below become one AVX-512 register at 16 floats in the x86-64-v4 copy, SSE in the default.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LIBER_ISA_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LIBER_ISA_CLONES
#endif

namespace liber::ctr {

// N floats as one GCC vector value; loads and stores through lanes() need only float
// alignment, so any row of a tensor qualifies.
template <int64_t N>
struct Lanes {
  typedef float type __attribute__((vector_size(N * sizeof(float)), aligned(sizeof(float))));
};
template <int64_t N>
inline typename Lanes<N>::type& lanes(float* p) {
  return *reinterpret_cast<typename Lanes<N>::type*>(p);
}
template <int64_t N>
inline const typename Lanes<N>::type& lanes(const float* p) {
  return *reinterpret_cast<const typename Lanes<N>::type*>(p);
}

// The sum of a vector's lanes, pairwise by halves.
template <int64_t N>
inline float sum_lanes(typename Lanes<N>::type v) {
  if constexpr (N <= 4) {
    float s = 0;
    for (int64_t i = 0; i < N; ++i) s += v[i];
    return s;
  } else {
    typename Lanes<N / 2>::type lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    return sum_lanes<N / 2>(lo + hi);
  }
}

// Length-N vector kernels; N > 0 fixes the length at compile time (one vector value, as wide
// as the calling function's ISA allows), N = 0 takes it at run time. Explicit SSE for N = 0:
// GCC does not vectorize these once inlined into the strided attention loops (it cannot prove
// the rows apart).
template <int64_t N>
inline float dot(const float* x, const float* y, int64_t n) {
  if constexpr (N > 0) {
    return sum_lanes<N>(lanes<N>(x) * lanes<N>(y));
  } else {
    int64_t i = 0;
    float sum = 0;
#if defined(__SSE2__)
    __m128 acc = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4)
      acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
    alignas(16) float l[4];
    _mm_store_ps(l, acc);
    sum = (l[0] + l[1]) + (l[2] + l[3]);
#endif
    for (; i < n; ++i) sum += x[i] * y[i];
    return sum;
  }
}

// y += a * x
template <int64_t N>
inline void axpy(float a, const float* x, float* y, int64_t n) {
  if constexpr (N > 0) {
    lanes<N>(y) += a * lanes<N>(x);
  } else {
    int64_t i = 0;
#if defined(__SSE2__)
    const __m128 av = _mm_set1_ps(a);
    for (; i + 4 <= n; i += 4)
      _mm_storeu_ps(y + i, _mm_add_ps(_mm_loadu_ps(y + i), _mm_mul_ps(av, _mm_loadu_ps(x + i))));
#endif
    for (; i < n; ++i) y[i] += a * x[i];
  }
}

// Asks for the cache lines of [p, p + bytes) ahead of their use: the kernels' rows are random
// reads into tables of megabytes, which a backbone's step has evicted from the cache.
inline void prefetch(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i);
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
