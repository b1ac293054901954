"""An optional C++ decode-attention kernel, compiled once on first use (needs a C++ compiler).

One decode step attends each running request's new query to its own cached keys. With torch
ops that is a copy of the keys, two batched matmuls, a mask and a softmax per layer: reading
the cache several times and paying many small calls. This kernel reads each row's keys and
values once, only up to that row's length, in a fixed order (so the result is the same in any
batch). Without a compiler the engine uses the torch ops instead.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <cmath>
#include <vector>

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
"""

_STALE_LOCK_S = 300  # a build takes about a minute on two cores
_loaded: Any = None
_tried = False


def compiled_kernels(build_dir: Path) -> Any:
    """The compiled module (`decode_attention`, `rms_norm`), or None (no compiler, the build
    failed, or `SHOPKEEP_LM_KERNELS=0`). Compiled into `build_dir` once; later starts load it."""
    global _loaded, _tried
    if _tried:
        return _loaded
    _tried = True
    if os.environ.get("SHOPKEEP_LM_KERNELS", "1") == "0":
        return None
    try:
        from torch.utils.cpp_extension import load_inline

        build_dir.mkdir(parents=True, exist_ok=True)
        lock = build_dir / "lock"  # left behind by a build that was killed: torch would wait
        if lock.exists() and time.time() - lock.stat().st_mtime > _STALE_LOCK_S:
            lock.unlink(missing_ok=True)
        module = load_inline(
            name="shopkeep_kernels_v2",
            cpp_sources=[_SOURCE],
            functions=["decode_attention", "rms_norm"],
            extra_cflags=["-O3", "-march=native", "-fopenmp"],
            build_directory=str(build_dir),
            verbose=False,
        )
        _loaded = module
    except Exception as exc:  # any build problem: the torch ops serve instead
        log.warning("C++ decode attention unavailable, using torch ops: %s", exc)
        _loaded = None
    return _loaded
