"""What the engine thread loads before it serves: the generator, its tokenizer, the embedder."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """The engine's models; `runner` / `embedder` are None when not asked for."""

    runner: Any = None
    tokenizer: Any = None
    end_ids: frozenset[int] = frozenset()
    embedder: Any = None
    governor: Any = None
    seconds: float = 0.0


def load_models(cfg: Any, defer_embedder: bool = False) -> Loaded:
    """Load what `cfg` (an `EngineConfig`) asks for, on the calling thread (imports torch).

    `defer_embedder`: only check that the embedding model is there (`load_embedder` later).

    Raises:
        LMUnavailable: a model file is missing or cannot be loaded.
    """
    from lm_service import models

    models.tune_process_memory()
    import torch

    from lm_service.threads import ThreadGovernor

    started = time.perf_counter()
    out = Loaded()
    out.governor = ThreadGovernor(models.cpu_count(), cfg.threads, torch.set_num_threads)
    device = models.choose_device()
    if cfg.generator:
        out.runner, out.tokenizer, out.end_ids = load_generator(cfg, device)
    if cfg.embedder:
        path = models.resolve_embed_path(cfg.embed_model)
        if not defer_embedder:
            out.embedder = load_embedder(path, device)
    out.seconds = time.perf_counter() - started
    return out


def load_embedder(path: Path, device: str | None = None) -> Any:
    """The sentence embedder at `path` (imports transformers' modelling code: seconds)."""
    from lm_service import models
    from lm_service.embedder import Embedder

    return Embedder(path, device=device or models.choose_device())


def load_generator(cfg: Any, device: str) -> tuple[Any, Any, frozenset[int]]:
    """(runner, tokenizer, end token ids): the fast runner when the model allows it."""
    import torch

    from lm_service import models
    from lm_service.fallback import RowByRow
    from lm_service.llama import FastLlama

    dtype = models.choose_dtype(cfg.dtype, device)
    path = models.resolve_lm_path(cfg.model)
    folder = models.model_folder(path, dtype, cfg.cache_dir)
    tokenizer = models.load_tokenizer(folder)
    end_ids = frozenset(models.end_token_ids(folder, tokenizer))
    kernels = None
    if device == "cpu" and dtype == torch.bfloat16 and cfg.kernels:
        from lm_service.kernels import compiled_kernels

        kernels = compiled_kernels(cfg.cache_dir / "kernels")
    runner: Any = FastLlama.from_folder(
        folder, dtype, device, prepared=models.prepared_path(folder, dtype, cfg.cache_dir),
        kernels=kernels,
    )
    if runner is None:
        model, _ = models.load_causal_lm(path, dtype, device, cfg.cache_dir)
        runner = (FastLlama.from_model(model, kernels=kernels) if FastLlama.supports(model)
                  else RowByRow(model))
    log.info("LM %s loaded (%s, %s, %s threads, %s)", path.name, device, dtype,
             cfg.threads or "auto", type(runner).__name__)
    return runner, tokenizer, end_ids
