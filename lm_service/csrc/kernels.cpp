// The engine's C++ kernels (built by lm_service/kernels.py with torch's cpp_extension).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <cmath>
#include <vector>

#if defined(__AVX512BF16__)
#include "attention.h"
#include "linear.h"
#define SHOPKEEP_LINEAR 1
#endif

// True when this build has `linear` (the processor has AVX-512 BF16).
bool has_linear() {
#ifdef SHOPKEEP_LINEAR
  return true;
#else
  return false;
#endif
}

// x: [rows, k] bf16; w: packed (see linear.h), [blocks, k/2, 16, 2] bf16; bias: [blocks*16]
// fp32 or empty; other: [rows, out_cols] bf16 for kAdd. Returns [rows, out_cols] bf16.
torch::Tensor linear(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor other,
                     int64_t epilogue) {
#ifndef SHOPKEEP_LINEAR
  TORCH_CHECK(false, "built without AVX-512 BF16: no linear kernel");
#else
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.scalar_type() == torch::kBFloat16);
  TORCH_CHECK(w.dim() == 4 && w.is_contiguous() && w.size(1) * 2 == x.size(1));
  const int64_t rows = x.size(0), blocks = w.size(0);
  const bool swiglu = epilogue == shopkeep::kSwiGLU;
  const int64_t out_cols = swiglu ? blocks * 8 : blocks * 16;
  auto out = torch::empty({rows, out_cols}, x.options());
  TORCH_CHECK(!bias.numel() || (bias.scalar_type() == torch::kFloat && bias.is_contiguous() &&
                                  bias.numel() == blocks * 16 && !swiglu));
  if (epilogue == shopkeep::kAdd) {
    TORCH_CHECK(other.scalar_type() == torch::kBFloat16 && other.is_contiguous() &&
                other.size(0) == rows && other.size(1) == out_cols);
  }
  shopkeep::LinearArgs args{
      reinterpret_cast<const uint16_t*>(x.data_ptr()),
      reinterpret_cast<const uint16_t*>(w.data_ptr()),
      bias.numel() ? bias.data_ptr<float>() : nullptr,
      epilogue == shopkeep::kAdd ? reinterpret_cast<const uint16_t*>(other.data_ptr()) : nullptr,
      reinterpret_cast<uint16_t*>(out.data_ptr()),
      rows, x.size(1), blocks, out_cols, static_cast<int>(epilogue)};
  if (rows == 0) return out;
  // Split the weights between the threads (each streams its own part); SwiGLU in pairs.
  const int64_t unit = swiglu ? 2 : 1;
  at::parallel_for(0, blocks / unit, 1, [&](int64_t begin, int64_t end) {
    shopkeep::linear_blocks<6, 4>(args, begin * unit, end * unit);
  });
  return out;
#endif
}

// True when `decode_step` takes this group size (query heads per key/value head) and head size.
bool has_decode_step(int64_t group, int64_t dim) {
#ifdef SHOPKEEP_LINEAR
  return shopkeep::attend_for(group, dim) != nullptr;
#else
  return false;
#endif
}

// One layer's attention in a decode step (see attention.h): qkv [n, (heads + 2 kv) * dim],
// cos/sin [n, dim], k/v caches [rows, kv, cap, dim], positions [n] int64; all bf16 but the
// positions, contiguous. Writes the new keys/values; returns [n, heads * dim].
torch::Tensor decode_step(torch::Tensor qkv, torch::Tensor cos, torch::Tensor sin,
                          torch::Tensor k, torch::Tensor v, torch::Tensor positions,
                          int64_t group, double scale) {
#ifndef SHOPKEEP_LINEAR
  TORCH_CHECK(false, "built without AVX-512 BF16: no decode_step");
#else
  const int64_t n = qkv.size(0), kv = k.size(1), cap = k.size(2), dim = k.size(3);
  const auto attend = shopkeep::attend_for(group, dim);
  TORCH_CHECK(attend != nullptr, "decode_step: unsupported group or head size");
  TORCH_CHECK(qkv.is_contiguous() && cos.is_contiguous() && sin.is_contiguous() &&
              k.is_contiguous() && v.is_contiguous() && positions.is_contiguous());
  TORCH_CHECK(qkv.size(1) == (kv * group + 2 * kv) * dim && k.size(0) >= n &&
              positions.scalar_type() == torch::kLong && cos.size(0) == n);
  const int64_t* pos = positions.data_ptr<int64_t>();
  for (int64_t b = 0; b < n; ++b) {
    TORCH_CHECK(pos[b] >= 0 && pos[b] < cap, "position past the cache");
  }
  auto out = torch::empty({n, kv * group * dim}, qkv.options());
  auto bf = [](const torch::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr()); };
  shopkeep::StepArgs args{bf(qkv), bf(cos), bf(sin), bf(k), bf(v), pos, bf(out),
                          kv, group, dim, cap, static_cast<float>(scale), attend};
  at::parallel_for(0, n * kv, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint16_t> query;
    std::vector<float> scores;
    for (int64_t task = begin; task < end; ++task)
      shopkeep::decode_step(args, task / kv, task % kv, query, scores);
  });
  return out;
#endif
}

// q: [n, kv_heads, group, dim] bf16; k, v: [rows, kv_heads, cap, dim] bf16 (contiguous);
// lengths: [n] int64. Returns [n, kv_heads, group, dim] bf16.
torch::Tensor decode_attention(torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor lengths, double scale) {
  const int64_t n = q.size(0), heads = q.size(1), group = q.size(2), dim = q.size(3);
  const int64_t cap = k.size(2);
  auto out = torch::empty_like(q);
  const auto* qp = reinterpret_cast<const c10::BFloat16*>(q.data_ptr());
  const auto* kp = reinterpret_cast<const c10::BFloat16*>(k.data_ptr());
  const auto* vp = reinterpret_cast<const c10::BFloat16*>(v.data_ptr());
  auto* op = reinterpret_cast<c10::BFloat16*>(out.data_ptr());
  const int64_t* lp = lengths.data_ptr<int64_t>();
  const float fscale = static_cast<float>(scale);
  // Portable, one key at a time: for builds without AVX-512 BF16 and the shapes `decode_step`
  // does not take (where it applies, the runner calls it instead).
  at::parallel_for(0, n * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(group * dim), acc(group * dim), row(dim);
    std::vector<float> scores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / heads, h = task % heads, len = lp[b];
      const c10::BFloat16* kb = kp + (b * heads + h) * cap * dim;
      const c10::BFloat16* vb = vp + (b * heads + h) * cap * dim;
      const c10::BFloat16* qb = qp + (b * heads + h) * group * dim;
      for (int64_t i = 0; i < group * dim; ++i) qf[i] = static_cast<float>(qb[i]);
      scores.assign(group * len, 0.f);
      for (int64_t t = 0; t < len; ++t) {
        for (int64_t d = 0; d < dim; ++d) row[d] = static_cast<float>(kb[t * dim + d]);
        for (int64_t g = 0; g < group; ++g) {
          float s = 0.f;
          const float* qg = qf.data() + g * dim;
          #pragma omp simd reduction(+:s)
          for (int64_t d = 0; d < dim; ++d) s += qg[d] * row[d];
          scores[g * len + t] = s * fscale;
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        float* sg = scores.data() + g * len;
        float top = -INFINITY;
        for (int64_t t = 0; t < len; ++t) top = std::max(top, sg[t]);
        float total = 0.f;
        for (int64_t t = 0; t < len; ++t) { sg[t] = std::exp(sg[t] - top); total += sg[t]; }
        const float inv = 1.f / total;
        for (int64_t t = 0; t < len; ++t) sg[t] *= inv;
      }
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t t = 0; t < len; ++t) {
        for (int64_t d = 0; d < dim; ++d) row[d] = static_cast<float>(vb[t * dim + d]);
        for (int64_t g = 0; g < group; ++g) {
          const float p = scores[g * len + t];
          float* ag = acc.data() + g * dim;
          #pragma omp simd
          for (int64_t d = 0; d < dim; ++d) ag[d] += p * row[d];
        }
      }
      c10::BFloat16* ob = op + (b * heads + h) * group * dim;
      for (int64_t i = 0; i < group * dim; ++i) ob[i] = c10::BFloat16(acc[i]);
    }
  });
  return out;
}

// x: [rows, dim] bf16 contiguous -> x / sqrt(mean(x^2) + eps), bf16 (the gain is folded away).
torch::Tensor rms_norm(torch::Tensor x, double eps) {
  const int64_t rows = x.size(0), dim = x.size(1);
  auto out = torch::empty_like(x);
  const auto* xp = reinterpret_cast<const c10::BFloat16*>(x.data_ptr());
  auto* op = reinterpret_cast<c10::BFloat16*>(out.data_ptr());
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> row(dim);
    for (int64_t r = begin; r < end; ++r) {
      float total = 0.f;
      for (int64_t d = 0; d < dim; ++d) {
        row[d] = static_cast<float>(xp[r * dim + d]);
        total += row[d] * row[d];
      }
      const float inv = 1.f / std::sqrt(total / dim + static_cast<float>(eps));
      for (int64_t d = 0; d < dim; ++d) op[r * dim + d] = c10::BFloat16(row[d] * inv);
    }
  });
  return out;
}

// Without the GIL: the kernels touch no Python objects, so the bot's event loop runs while a
// decode step computes (torch's own ops release it as well).
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("linear", torch::wrap_pybind_function_no_gil(linear));
  m.def("has_linear", &has_linear);
  m.def("decode_step", torch::wrap_pybind_function_no_gil(decode_step));
  m.def("has_decode_step", &has_decode_step);
  m.def("decode_attention", torch::wrap_pybind_function_no_gil(decode_attention));
  m.def("rms_norm", torch::wrap_pybind_function_no_gil(rms_norm));
}
