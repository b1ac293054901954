// y = x·Wᵀ for bfloat16 x and a packed bfloat16 W, with AVX-512 BF16 dot products.
//
// Why our own: oneDNN reads a one-row decode step's weights at about half the memory
// bandwidth, and it picks different kernels for different row counts, so a row's result
// depended on its batch. Here every output is one fp32 accumulator summed over the input in
// a fixed order, whatever the number of rows: a row's result is the same in any batch.
//
// Packed W: blocks of 16 outputs, each [K/2][16][2] (pairs of inputs next to each other, as
// vdpbf16ps reads them). For SwiGLU the gate's and the up projection's blocks alternate.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace shopkeep {

enum Epilogue : int { kPlain = 0, kAdd = 1, kSwiGLU = 2 };

inline __m512 exp_ps(__m512 x) {
  // Cephes' expf: 2^n · p(r), r = x - n·ln2 in [-ln2/2, ln2/2].
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

inline __m512 load_bf16(const uint16_t* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

inline void store_bf16(uint16_t* p, __m512 v) {
  const __m256bh h = _mm512_cvtneps_pbh(v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<const __m256i&>(h));
}

struct LinearArgs {
  const uint16_t* x;      // [rows, k]
  const uint16_t* w;      // packed, `blocks` blocks of k*16
  const float* bias;      // [blocks*16] or null (not with SwiGLU)
  const uint16_t* other;  // [rows, out_cols] for kAdd, else null
  uint16_t* out;          // [rows, out_cols]
  int64_t rows, k, blocks, out_cols;
  int epilogue;
};

// Rows m..m+MR against blocks b..b+NB (for SwiGLU NB/2 output blocks).
template <int MR, int NB>
inline void tile(const LinearArgs& a, int64_t m, int64_t b) {
  const int64_t pairs = a.k / 2;
  const auto* x = reinterpret_cast<const int32_t*>(a.x) + m * pairs;
  const uint16_t* w = a.w + b * a.k * 16;
  __m512 acc[MR][NB];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_ps();
  // With several rows a tile computes long enough for the hardware prefetcher to fall behind:
  // ask for the next tile's weights meanwhile (one row streams fast enough without).
  const char* next = reinterpret_cast<const char*>(w + NB * a.k * 16);
  for (int64_t p = 0; p < pairs; ++p) {
    if constexpr (MR > 1) {
      for (int j = 0; j < NB; ++j) _mm_prefetch(next + (j * a.k * 16 + p * 32) * 2, _MM_HINT_T0);
    }
    __m512bh wv[NB];
    for (int j = 0; j < NB; ++j) {
      const __m512i raw = _mm512_loadu_si512(w + j * a.k * 16 + p * 32);
      wv[j] = reinterpret_cast<const __m512bh&>(raw);
    }
    for (int r = 0; r < MR; ++r) {
      const __m512i raw = _mm512_set1_epi32(x[r * pairs + p]);
      const __m512bh xb = reinterpret_cast<const __m512bh&>(raw);
      for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], xb, wv[j]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    uint16_t* out = a.out + (m + r) * a.out_cols;
    if (a.epilogue == kSwiGLU) {
      for (int j = 0; j + 1 < NB; j += 2) {
        const __m512 g = acc[r][j], u = acc[r][j + 1];
        const __m512 silu = _mm512_div_ps(
            g, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        store_bf16(out + (b + j) / 2 * 16, _mm512_mul_ps(silu, u));
      }
      continue;
    }
    for (int j = 0; j < NB; ++j) {
      const int64_t col = (b + j) * 16;
      __m512 v = acc[r][j];
      if (a.bias != nullptr) v = _mm512_add_ps(v, _mm512_loadu_ps(a.bias + col));
      if (a.epilogue == kAdd) v = _mm512_add_ps(v, load_bf16(a.other + (m + r) * a.out_cols + col));
      store_bf16(out + col, v);
    }
  }
}

// The last `left` (< R + 1) rows, in one tile.
template <int R, int NB>
inline void row_tail(const LinearArgs& a, int64_t m, int64_t b, int64_t left) {
  if constexpr (R > 0) {
    if (left == R) return tile<R, NB>(a, m, b);
    row_tail<R - 1, NB>(a, m, b, left);
  }
}

template <int MR, int NB>
inline void rows_against(const LinearArgs& a, int64_t b) {
  int64_t m = 0;
  for (; m + MR <= a.rows; m += MR) tile<MR, NB>(a, m, b);
  row_tail<MR - 1, NB>(a, m, b, a.rows - m);
}

template <int MR, int NB>
inline void block_tail(const LinearArgs& a, int64_t b, int64_t left) {
  if constexpr (NB > 0) {
    if (left == NB) return rows_against<MR, NB>(a, b);
    block_tail<MR, NB - 1>(a, b, left);
  }
}

// All rows against blocks [begin, end) (even bounds for SwiGLU), MR rows × NB blocks a tile.
template <int MR, int NB>
inline void linear_blocks(const LinearArgs& a, int64_t begin, int64_t end) {
  int64_t b = begin;
  for (; b + NB <= end; b += NB) rows_against<MR, NB>(a, b);
  block_tail<MR, NB - 1>(a, b, end - b);
}

}  // namespace shopkeep
