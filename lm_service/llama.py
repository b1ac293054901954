"""The fast path for Llama-family models: fused, prepacked weights and a KV cache of slots.

Every running request owns one row ("slot") of the cache; rows 0..n-1 are the running ones.
A request that joins gets the next row and is prefilled there; one that finishes hands its
row to the last one. The batch therefore changes between any two decode steps (continuous
batching) without copying the cache of the others.

Bitwise batch invariance (greedy output equal batched or alone) holds because oneDNN's bf16
matmul gives each row the same result whatever the batch size, each prompt is prefilled whole,
and masked cache positions add exact zeros.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

SUPPORTED_TYPES = frozenset({"llama", "mistral", "qwen2"})


class Linear:
    """y = x·Wᵀ (+ b); on CPU in bfloat16 the weight is prepacked for oneDNN once."""

    def __init__(self, weight: Tensor, bias: Tensor | None, packed: bool) -> None:
        self.out_features = weight.shape[0]
        self.bias = bias
        self.packed = packed
        self.weight = (
            torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 16)
            if packed
            else weight.contiguous()
        )

    def __call__(self, x: Tensor, silu: bool = False) -> Tensor:
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(  # type: ignore[no-any-return]
                x, self.weight, self.bias, "swish" if silu else "none", [], ""
            )
        y = F.linear(x, self.weight, self.bias)
        return F.silu(y) if silu else y

    def times(self, x: Tensor, other: Tensor) -> Tensor:
        """(x·Wᵀ) * other."""
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise.binary(  # type: ignore[no-any-return]
                x, other, self.weight, self.bias, "mul"
            )
        return F.linear(x, self.weight, self.bias) * other

    def plus(self, x: Tensor, other: Tensor) -> Tensor:
        """(x·Wᵀ) + other."""
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise.binary(  # type: ignore[no-any-return]
                x, other, self.weight, self.bias, "add"
            )
        return F.linear(x, self.weight, self.bias) + other


def _rotated(weight: Tensor, heads: int, head_dim: int) -> Tensor:
    """Rows that compute rotate_half(x·Wᵀ) directly: per head, (-second half, first half)."""
    w = weight.reshape(heads, head_dim, *weight.shape[1:])
    half = head_dim // 2
    return torch.cat([-w[:, half:], w[:, :half]], dim=1).reshape(weight.shape)


class _Layer:
    def __init__(self, layer: Any, cfg: Any, packed: bool) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        wq, wk, wv = attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight
        # One matmul gives q, k, rotate_half(q), rotate_half(k) and v.
        weight = torch.cat([wq, wk, _rotated(wq, nh, hd), _rotated(wk, nkv, hd), wv])
        bias = None
        if attn.q_proj.bias is not None:
            bq, bk, bv = attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias
            bias = torch.cat([bq, bk, _rotated(bq, nh, hd), _rotated(bk, nkv, hd), bv])
        self.qkv = Linear(weight, bias, packed)
        self.o = Linear(attn.o_proj.weight, attn.o_proj.bias, packed)
        self.gate = Linear(mlp.gate_proj.weight, None, packed)
        self.up = Linear(mlp.up_proj.weight, None, packed)
        self.down = Linear(mlp.down_proj.weight, None, packed)
        self.norm1 = layer.input_layernorm.weight.detach()
        self.norm2 = layer.post_attention_layernorm.weight.detach()


class FastLlama:
    """Prefill and decode over a slot KV cache for Llama, Mistral and Qwen2 models."""

    @staticmethod
    def supports(model: Any) -> bool:
        """True for the architectures this class implements (else the engine falls back)."""
        cfg = model.config
        if cfg.model_type not in SUPPORTED_TYPES:
            return False
        if getattr(cfg, "use_sliding_window", False) or (
            cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None)
        ):
            return False
        inner = getattr(model, "model", None)
        return hasattr(inner, "rotary_emb") and hasattr(inner, "layers")

    def __init__(self, model: Any, max_positions: int | None = None) -> None:
        cfg = model.config
        self.dtype: torch.dtype = model.dtype
        self.device = model.device
        packed = self.device.type == "cpu" and self.dtype == torch.bfloat16
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        cfg.head_dim = self.head_dim
        self.hidden = cfg.hidden_size
        self.eps = cfg.rms_norm_eps
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.vocab = cfg.vocab_size
        with torch.inference_mode():
            inner = model.model
            self.layers = [_Layer(layer, cfg, packed) for layer in inner.layers]
            self.embed = inner.embed_tokens.weight.detach()
            self.norm = inner.norm.weight.detach()
            self.lm_head = Linear(model.lm_head.weight.detach(), None, packed)
            rotary = inner.rotary_emb
            limit = max_positions or cfg.max_position_embeddings
            positions = torch.arange(limit, device=self.device, dtype=torch.float32)
            freqs = torch.outer(positions, rotary.inv_freq.float().to(self.device))
            emb = torch.cat([freqs, freqs], dim=-1)
            scaling = float(getattr(rotary, "attention_scaling", 1.0))
            self.cos = (emb.cos() * scaling).to(self.dtype)
            self.sin = (emb.sin() * scaling).to(self.dtype)
        self.max_positions = limit
        qk = (self.heads + self.kv_heads) * self.head_dim
        self._split = (qk, qk, self.kv_heads * self.head_dim)
        self.k_cache: list[Tensor] = []
        self.v_cache: list[Tensor] = []
        self.rows_cap = 0
        self.len_cap = 0

    # -- the cache ---------------------------------------------------------------------------

    def bytes_per_token(self) -> int:
        """Cache bytes one token of one request takes."""
        per = 2 * len(self.layers) * self.kv_heads * self.head_dim
        return per * torch.tensor([], dtype=self.dtype).element_size()

    @torch.inference_mode()
    def reserve(self, rows: int, length: int) -> None:
        """Grow the cache (copying what it holds) to at least `rows` × `length` positions."""
        if rows <= self.rows_cap and length <= self.len_cap:
            return
        new_rows = max(self.rows_cap, -(-rows // 8) * 8)
        new_len = max(self.len_cap, -(-length // 128) * 128)
        shape = (new_rows, self.kv_heads, new_len, self.head_dim)
        for cache in (self.k_cache, self.v_cache):
            for i in range(len(self.layers)):
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
        self.k_cache, self.v_cache = [], []
        self.rows_cap = self.len_cap = 0

    @torch.inference_mode()
    def move_row(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` cached positions of row `src` into row `dst`."""
        for cache in (self.k_cache, self.v_cache):
            for layer in cache:
                layer[dst, :, :length] = layer[src, :, :length]

    # -- the model ---------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, first_row: int, prompts: list[list[int]]) -> Tensor:
        """Run whole prompts into rows first_row, first_row+1, ...; return last-token logits."""
        dev = self.device
        lengths = [len(p) for p in prompts]
        count, longest = len(prompts), max(lengths)
        self.reserve(first_row + count, longest)
        tokens = torch.tensor([t for p in prompts for t in p], device=dev)
        positions = torch.cat([torch.arange(n, device=dev) for n in lengths])
        rows = torch.cat(
            [torch.full((n,), i, device=dev) for i, n in enumerate(lengths)]
        )
        cos = self.cos[positions].unsqueeze(1)
        sin = self.sin[positions].unsqueeze(1)
        x = self.embed[tokens]
        hd, nh, nkv = self.head_dim, self.heads, self.kv_heads
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), layer.norm1, self.eps)
            a, b, v = layer.qkv(h).split(self._split, dim=-1)
            qk = torch.addcmul(a.view(-1, nh + nkv, hd) * cos, b.view(-1, nh + nkv, hd), sin)
            kc = self.k_cache[i][first_row : first_row + count]
            vc = self.v_cache[i][first_row : first_row + count]
            kc[rows, :, positions] = qk[:, nh:]
            vc[rows, :, positions] = v.view(-1, nkv, hd)
            q = qk[:, :nh].transpose(0, 1)  # [heads, tokens, head_dim]
            # One prompt at a time: a padded batch would change the sums with its length.
            parts = [
                F.scaled_dot_product_attention(
                    q[None, :, starts[j] : starts[j + 1]], kc[j : j + 1, :, :n],
                    vc[j : j + 1, :, :n], is_causal=True, scale=self.scale, enable_gqa=True,
                )[0]
                for j, n in enumerate(lengths)
            ]
            attn = torch.cat(parts, dim=1).transpose(0, 1).reshape(-1, nh * hd)
            x = layer.o.plus(attn, x)
            h = F.rms_norm(x, (self.hidden,), layer.norm2, self.eps)
            x = layer.down.plus(layer.up.times(h, layer.gate(h, silu=True)), x)
        last = torch.tensor(lengths, device=dev).cumsum(0) - 1
        h = F.rms_norm(x[last], (self.hidden,), self.norm, self.eps)
        return self.lm_head(h)

    @torch.inference_mode()
    def decode(self, tokens: list[int], positions: list[int]) -> Tensor:
        """One step for rows 0..n-1: token i sits at positions[i]; return logits [n, vocab]."""
        dev = self.device
        n = len(tokens)
        span = max(positions) + 1
        self.reserve(n, span)
        tok = torch.tensor(tokens, device=dev)
        pos = torch.tensor(positions, device=dev)
        rows = torch.arange(n, device=dev)
        cos = self.cos[pos].unsqueeze(1)
        sin = self.sin[pos].unsqueeze(1)
        mask = torch.zeros(n, 1, 1, span, device=dev)
        mask.masked_fill_((torch.arange(span, device=dev) > pos[:, None]).view(n, 1, 1, span),
                          float("-inf"))
        x = self.embed[tok]
        hd, nh, nkv = self.head_dim, self.heads, self.kv_heads
        group = nh // nkv
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), layer.norm1, self.eps)
            a, b, v = layer.qkv(h).split(self._split, dim=-1)
            qk = torch.addcmul(a.view(n, nh + nkv, hd) * cos, b.view(n, nh + nkv, hd), sin)
            kc, vc = self.k_cache[i], self.v_cache[i]
            kc[rows, :, pos] = qk[:, nh:]
            vc[rows, :, pos] = v.view(n, nkv, hd)
            q = qk[:, :nh].reshape(n, nkv, group, hd)
            keys = kc[:n, :, :span].contiguous()
            scores = torch.matmul(q, keys.transpose(-1, -2))
            probs = torch.softmax(torch.add(mask, scores, alpha=self.scale), dim=-1)
            attn = torch.matmul(probs.to(self.dtype), vc[:n, :, :span]).reshape(n, nh * hd)
            x = layer.o.plus(attn, x)
            h = F.rms_norm(x, (self.hidden,), layer.norm2, self.eps)
            x = layer.down.plus(layer.up.times(h, layer.gate(h, silu=True)), x)
        h = F.rms_norm(x, (self.hidden,), self.norm, self.eps)
        return self.lm_head(h)
