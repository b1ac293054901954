// Decode attention with AVX-512 BF16: one new query per request (a group of query heads per
// cached key/value head) against that request's cached keys and values.
//
// Scores are bf16 dot products summed in fp32 (vdpbf16ps), 16 keys at a time, their lanes
// added by a fixed transpose-and-add tree; values are accumulated in fp32. Each request's
// result depends on its own cache only, in a fixed order: the same in any batch.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "linear.h"  // exp_ps, load_bf16, store_bf16

namespace shopkeep {

// The 16 lane sums of v[0..15], in order, as one vector.
inline __m512 sum_lanes16(__m512 v[16]) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i) {  // [v0 v1 v0 v1 | ...] within each 128-bit lane
    a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {  // [v0 v1 v2 v3] within each 128-bit lane
    const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
    b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  for (int i = 0; i < 2; ++i) {  // 128-bit lanes: [b0.0+b0.2, b0.1+b0.3, b1.0+b1.2, b1.1+b1.3]
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xEE));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88),
                       _mm512_shuffle_f32x4(c[0], c[1], 0xDD));
}

// The lanes of a 16-wide block that hold one of the `left` remaining scores.
inline __mmask16 lanes_left(int64_t left) {
  return left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
}

// One (request, key/value head): q [G][D], k and v [len][D] (rows of the cache), out [G][D].
template <int G, int D>
void attend(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t len, float scale,
            uint16_t* out, std::vector<float>& scores) {
  static_assert(D % 32 == 0, "head size: a multiple of 32");
  constexpr int kChunks = D / 32;  // bf16 pairs per vdpbf16ps: 32 values
  const int64_t padded = (len + 15) / 16 * 16;
  scores.resize(G * padded);
  __m512bh qv[G][kChunks];
  for (int g = 0; g < G; ++g)
    for (int c = 0; c < kChunks; ++c) {
      const __m512i raw = _mm512_loadu_si512(q + g * D + c * 32);
      qv[g][c] = reinterpret_cast<const __m512bh&>(raw);
    }
  for (int64_t t0 = 0; t0 < len; t0 += 16) {
    const int count = static_cast<int>(len - t0 < 16 ? len - t0 : 16);
    for (int g = 0; g < G; ++g) {
      __m512 partial[16];
      for (int j = 0; j < 16; ++j) {
        partial[j] = _mm512_setzero_ps();
        if (j >= count) continue;
        for (int c = 0; c < kChunks; ++c) {
          const __m512i raw = _mm512_loadu_si512(k + (t0 + j) * D + c * 32);
          partial[j] = _mm512_dpbf16_ps(partial[j], qv[g][c],
                                        reinterpret_cast<const __m512bh&>(raw));
        }
      }
      _mm512_storeu_ps(scores.data() + g * padded + t0,
                       _mm512_mul_ps(sum_lanes16(partial), _mm512_set1_ps(scale)));
    }
  }
  float inv_total[G];
  for (int g = 0; g < G; ++g) {
    float* s = scores.data() + g * padded;
    __m512 top = _mm512_set1_ps(-INFINITY);
    for (int64_t t0 = 0; t0 < len; t0 += 16) {
      top = _mm512_mask_max_ps(top, lanes_left(len - t0), top, _mm512_loadu_ps(s + t0));
    }
    const __m512 peak = _mm512_set1_ps(_mm512_reduce_max_ps(top));
    __m512 total = _mm512_setzero_ps();
    for (int64_t t0 = 0; t0 < len; t0 += 16) {
      const __m512 shifted = _mm512_sub_ps(_mm512_loadu_ps(s + t0), peak);
      const __m512 e = _mm512_maskz_mov_ps(lanes_left(len - t0), exp_ps(shifted));
      _mm512_storeu_ps(s + t0, e);
      total = _mm512_add_ps(total, e);
    }
    inv_total[g] = 1.0f / _mm512_reduce_add_ps(total);
  }
  __m512 acc[G][D / 16];
  for (int g = 0; g < G; ++g)
    for (int i = 0; i < D / 16; ++i) acc[g][i] = _mm512_setzero_ps();
  for (int64_t t = 0; t < len; ++t) {
    __m512 row[D / 16];
    for (int i = 0; i < D / 16; ++i) row[i] = load_bf16(v + t * D + i * 16);
    for (int g = 0; g < G; ++g) {
      const __m512 p = _mm512_set1_ps(scores[g * padded + t]);
      for (int i = 0; i < D / 16; ++i) acc[g][i] = _mm512_fmadd_ps(p, row[i], acc[g][i]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int i = 0; i < D / 16; ++i)
      store_bf16(out + g * D + i * 16, _mm512_mul_ps(acc[g][i], _mm512_set1_ps(inv_total[g])));
}

using AttendFn = void (*)(const uint16_t*, const uint16_t*, const uint16_t*, int64_t, float,
                          uint16_t*, std::vector<float>&);

// The instance for a group size and head size, or null (the caller then uses portable code).
inline AttendFn attend_for(int64_t group, int64_t dim) {
#define SHOPKEEP_ATTEND(G)                                   \
  case G:                                                    \
    return dim == 64 ? attend<G, 64> : dim == 128 ? attend<G, 128> : nullptr;
  switch (group) {
    SHOPKEEP_ATTEND(1) SHOPKEEP_ATTEND(2) SHOPKEEP_ATTEND(3) SHOPKEEP_ATTEND(4)
    SHOPKEEP_ATTEND(5) SHOPKEEP_ATTEND(6) SHOPKEEP_ATTEND(7) SHOPKEEP_ATTEND(8)
    default: return nullptr;
  }
#undef SHOPKEEP_ATTEND
}

// One decode step of one layer's attention for request `b`'s key/value head `h`: RoPE on the
// new query heads and key (qkv row: [heads + kv_heads + kv_heads][dim], in that order), the
// key and value written into the cache at the request's position, then `attend`.
struct StepArgs {
  const uint16_t* qkv;       // [n, (heads + 2 kv_heads) * dim]
  const uint16_t* cos;       // [n, dim]
  const uint16_t* sin;       // [n, dim]: sin with its first half negated (rotate_half folded)
  uint16_t* k;               // [rows, kv_heads, cap, dim]
  uint16_t* v;
  const int64_t* positions;  // [n]
  uint16_t* out;             // [n, heads * dim]
  int64_t kv_heads, group, dim, cap;
  float scale;
  AttendFn attend;
};

inline float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

inline uint16_t to_bf16(float f) {  // round to nearest even (NaN is not expected here)
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

// out[i] = x[i]·cos[i] + x[(i + dim/2) mod dim]·sin[i]
inline void rope(const uint16_t* x, const uint16_t* cos, const uint16_t* sin, int64_t dim,
                 uint16_t* out) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < dim; ++i) {
    const float turned = bf16_value(x[i < half ? i + half : i - half]);
    out[i] = to_bf16(bf16_value(x[i]) * bf16_value(cos[i]) + turned * bf16_value(sin[i]));
  }
}

inline void decode_step(const StepArgs& a, int64_t b, int64_t h, std::vector<uint16_t>& query,
                        std::vector<float>& scores) {
  const int64_t heads = a.kv_heads * a.group, d = a.dim, pos = a.positions[b];
  const uint16_t* row = a.qkv + b * (heads + 2 * a.kv_heads) * d;
  const uint16_t* cos = a.cos + b * d;
  const uint16_t* sin = a.sin + b * d;
  const int64_t cache = (b * a.kv_heads + h) * a.cap * d;
  rope(row + (heads + h) * d, cos, sin, d, a.k + cache + pos * d);
  __builtin_memcpy(a.v + cache + pos * d, row + (heads + a.kv_heads + h) * d, d * 2);
  query.resize(a.group * d);
  for (int64_t g = 0; g < a.group; ++g)
    rope(row + (h * a.group + g) * d, cos, sin, d, query.data() + g * d);
  a.attend(query.data(), a.k + cache, a.v + cache, pos + 1, a.scale,
           a.out + (b * heads + h * a.group) * d, scores);
}

}  // namespace shopkeep
