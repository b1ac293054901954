"""The slot KV cache: one row per running request, grown in steps, rows moved on retire."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class SlotCache:
    """Keys and values of every layer as [rows, kv_heads, length, head_dim] tensors.

    Args:
        layers: decoder layers; kv_heads / head_dim: the attention's shape.
        dtype / device: where and in what the cache is kept.
    """

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.layers = layers
        self.kv_heads = kv_heads
        self.head_dim = head_dim
        self.dtype = dtype
        self.device = device
        self.k: list[Tensor] = []
        self.v: list[Tensor] = []
        self.rows_cap = 0
        self.len_cap = 0

    def bytes_per_token(self) -> int:
        """Cache bytes one token of one request takes."""
        per = 2 * self.layers * self.kv_heads * self.head_dim
        return per * torch.tensor([], dtype=self.dtype).element_size()

    @torch.inference_mode()
    def reserve(self, rows: int, length: int) -> None:
        """Grow the cache (copying what it holds) to at least `rows` × `length` positions."""
        if rows <= self.rows_cap and length <= self.len_cap:
            return
        new_rows = max(self.rows_cap, -(-rows // 8) * 8)
        new_len = max(self.len_cap, -(-length // 32) * 32)
        shape = (new_rows, self.kv_heads, new_len, self.head_dim)
        for cache in (self.k, self.v):
            for i in range(self.layers):
                fresh = torch.zeros(shape, dtype=self.dtype, device=self.device)
                if cache and i < len(cache):
                    old = cache[i]
                    fresh[: old.shape[0], :, : old.shape[2]] = old
                    cache[i] = fresh
                else:
                    cache.append(fresh)
        self.rows_cap, self.len_cap = new_rows, new_len

    def release(self) -> None:
        """Free the cache (when nothing runs)."""
        self.k, self.v = [], []
        self.rows_cap = self.len_cap = 0

    @torch.inference_mode()
    def move_row(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` cached positions of row `src` into row `dst`."""
        for cache in (self.k, self.v):
            for layer in cache:
                layer[dst, :, :length] = layer[src, :, :length]

    @torch.inference_mode()
    def save_prefix(self, row: int, length: int) -> Any:
        """A copy of the first `length` cached positions of `row` (a shared prompt prefix)."""
        return [(k[row, :, :length].clone(), v[row, :, :length].clone())
                for k, v in zip(self.k, self.v, strict=True)]

    @torch.inference_mode()
    def load_prefix(self, row: int, prefix: Any) -> None:
        """Put a saved prefix at the start of `row` (the cache must hold the row)."""
        for (k, v), kc, vc in zip(prefix, self.k, self.v, strict=True):
            length = k.shape[1]
            kc[row, :, :length] = k
            vc[row, :, :length] = v
