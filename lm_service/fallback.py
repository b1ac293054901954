"""The runner for architectures without a fast path: the model's own forward, row by row."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)


class RowByRow:
    """Same interface as `FastLlama`, built on `model(...)` with one HF cache per row.

    Correct for any causal LM that transformers can load, but each row runs its own forward,
    so it gains nothing from batching; the engine logs which runner it uses.
    """

    def __init__(self, model: Any) -> None:
        from transformers import DynamicCache

        self._new_cache = lambda: DynamicCache(config=model.config)
        self.model = model
        self.device = model.device
        self.dtype: torch.dtype = model.dtype
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 2048))
        self.caches: list[Any] = []
        log.warning(
            "no fast path for model type %r: generating row by row (slow)",
            model.config.model_type,
        )

    def bytes_per_token(self) -> int:
        cfg = self.model.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        size = torch.tensor([], dtype=self.dtype).element_size()
        return int(2 * cfg.num_hidden_layers * heads * head_dim * size)

    def reserve(self, rows: int, length: int) -> None:
        while len(self.caches) < rows:
            self.caches.append(None)

    def release(self) -> None:
        self.caches = []

    def move_row(self, src: int, dst: int, length: int) -> None:
        self.caches[dst] = self.caches[src]
        self.caches[src] = None

    @torch.inference_mode()
    def prefill(self, first_row: int, prompts: list[list[int]],
                cached: list[int] | None = None) -> Tensor:
        self.reserve(first_row + len(prompts), 0)
        rows = []
        for i, prompt in enumerate(prompts):
            cache = self._new_cache()
            ids = torch.tensor([prompt], device=self.device)
            out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
            self.caches[first_row + i] = out.past_key_values
            rows.append(out.logits[0, -1])
        return torch.stack(rows)

    @torch.inference_mode()
    def decode(self, tokens: list[int], positions: list[int]) -> Tensor:
        rows = []
        for i, (token, position) in enumerate(zip(tokens, positions, strict=True)):
            ids = torch.tensor([[token]], device=self.device)
            pos = torch.tensor([[position]], device=self.device)
            out = self.model(
                input_ids=ids, position_ids=pos, past_key_values=self.caches[i], use_cache=True
            )
            self.caches[i] = out.past_key_values
            rows.append(out.logits[0, -1])
        return torch.stack(rows)
