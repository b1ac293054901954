"""Optional C++ kernels, compiled once on first use (needs a C++ compiler): the sources are in
`lm_service/csrc/`.

- `linear`: y = x·Wᵀ over weights packed for AVX-512 BF16 dot products (`pack_linear`), with
  the residual add or SwiGLU done on the way out. A one-row decode step is bound by reading the
  weights; this streams them at close to the memory's speed (oneDNN reached about half), and
  every row is summed in the same order in any batch.
- `decode_attention`: each running request's new query against its own cached keys and values,
  read once and only up to that row's length; `decode_step` also applies RoPE and writes the new
  key and value into the cache (a dozen small torch calls a layer, in one).
- `rms_norm`: without a gain (folded into the next weights).

Without a compiler, or on a processor without AVX-512 BF16, the engine uses torch ops instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

_CSRC = Path(__file__).with_name("csrc")
_FLAGS = ["-O3", "-march=native", "-fopenmp"]
PLAIN, ADD, SWIGLU = 0, 1, 2  # `linear` epilogues (csrc/linear.h)
_STALE_LOCK_S = 300  # a build takes about a minute on two cores
_loaded: Any = None
_tried = False


def compiled_kernels(build_dir: Path) -> Any:
    """The compiled module (`linear`, `decode_step`, `decode_attention`, `rms_norm`, ...), or
    None (no compiler, the build failed, or `SHOPKEEP_LM_KERNELS=0`). Compiled into
    `build_dir` once per version of the sources, processor and torch; later starts load it."""
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
        sources = sorted(_CSRC.glob("*.[ch]*"))
        # A build is for this processor (-march=native: a copied var/ must not reuse it) and
        # this torch (its headers and libraries).
        digest = hashlib.sha256((" ".join(_FLAGS) + _cpu_flags() + torch.__version__).encode())
        for path in sources:
            digest.update(path.read_bytes())
        module = load_inline(
            name=f"shopkeep_kernels_{digest.hexdigest()[:12]}",
            cpp_sources=[(_CSRC / "kernels.cpp").read_text()],
            extra_cflags=_FLAGS,
            extra_include_paths=[str(_CSRC)],
            build_directory=str(build_dir),
            verbose=False,
        )
        _loaded = module
    except Exception as exc:  # any build problem: the torch ops serve instead
        log.warning("C++ kernels unavailable, using torch ops: %s", exc)
        _loaded = None
    return _loaded


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return ""


def pack_linear(weight: Tensor, up: Tensor | None = None) -> Tensor | None:
    """`weight` [out, in] in the layout `linear` reads; with `up`, gate and up projections
    packed together for the SwiGLU epilogue. None for shapes the kernel does not take."""
    out_features, in_features = weight.shape
    if out_features % 16 or in_features % 2 or weight.dtype != torch.bfloat16:
        return None

    def blocks(w: Tensor) -> Tensor:
        return w.reshape(out_features // 16, 16, in_features // 2, 2).permute(0, 2, 1, 3)

    if up is None:
        return blocks(weight).contiguous()
    if up.shape != weight.shape or up.dtype != weight.dtype:
        return None
    paired = torch.stack([blocks(weight), blocks(up)], dim=1)
    return paired.reshape(-1, in_features // 2, 16, 2).contiguous()
