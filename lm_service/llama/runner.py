"""`FastLlama`: prefill and decode of Llama-family models over the slot KV cache."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_service.llama import weights as w
from lm_service.llama.cache import SlotCache
from lm_service.llama.linear import Layer, Linear


class FastLlama:
    """Prefill and decode over a slot KV cache for Llama, Mistral and Qwen2 models."""

    @staticmethod
    def supports(model: Any) -> bool:
        """True for the architectures this class implements (else the engine falls back)."""
        inner = getattr(model, "model", None)
        return (w.supports_config(model.config) and hasattr(inner, "rotary_emb")
                and hasattr(inner, "layers"))

    @classmethod
    def from_model(cls, model: Any, max_positions: int | None = None,
                   kernels: Any = None) -> FastLlama:
        """From a loaded transformers model (any RoPE variant it implements)."""
        params = dict(model.named_parameters())

        def get(name: str, required: bool = True) -> Any:
            value = params.get(name)
            if value is None and name == "lm_head.weight":
                value = params.get("model.embed_tokens.weight")
            if value is None and required:
                raise KeyError(name)
            return None if value is None else value.detach()

        rotary = model.model.rotary_emb
        rope = (rotary.inv_freq.float().cpu(), float(getattr(rotary, "attention_scaling", 1.0)))
        return cls(model.config, w.fuser(get, model.config), rope, model.dtype, model.device,
                   max_positions, kernels)

    @classmethod
    def from_folder(cls, folder: Path, dtype: torch.dtype, device: str,
                    max_positions: int | None = None, prepared: Path | None = None,
                    kernels: Any = None) -> FastLlama | None:
        """Straight from a safetensors folder, one tensor at a time (no transformers model:
        faster to start and no second copy of the weights). None if not supported here.

        `prepared`: a file for the fused weights; written on the first start, read on later
        ones (which then skip the fusing: seconds of a cold start). `kernels`: the C++ kernels
        (`lm_service.kernels.compiled_kernels`), used for bfloat16 on CPU.
        """
        cfg = w.read_config(folder)
        if cfg is None or not w.supports_config(cfg):
            return None
        rope = w.default_rope(cfg)
        if rope is None:
            return None
        at = torch.device(device)
        with w.folder_weights(folder, device, dtype) as get:
            if get is None:
                return None
            if prepared is not None and prepared.exists():
                return cls(cfg, w.prepared(prepared, device, dtype), rope, dtype, at,
                           max_positions, kernels)
            fused = w.fuser(get, cfg)
            if prepared is None:
                return cls(cfg, fused, rope, dtype, at, max_positions, kernels)
            fused, kept = w.keeping(fused)
            runner = cls(cfg, fused, rope, dtype, at, max_positions, kernels)
            w.save(kept, prepared)
            return runner

    def __init__(self, cfg: Any, fused: w.Fused, rope: tuple[Tensor, float],
                 dtype: torch.dtype, device: torch.device, max_positions: int | None = None,
                 kernels: Any = None) -> None:
        self.dtype = dtype
        self.device = device
        packed = self.device.type == "cpu" and self.dtype == torch.bfloat16
        # The C++ kernels (lm_service.kernels) serve bfloat16 on CPU only.
        self.kernels: Any = kernels if packed else None
        linear_kernels = kernels if self.kernels is not None and kernels.has_linear() else None
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        cfg.head_dim = self.head_dim
        self.hidden = cfg.hidden_size
        self.eps = cfg.rms_norm_eps
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.vocab = cfg.vocab_size
        with torch.inference_mode():
            self.layers = [Layer(fused(i), packed, linear_kernels)
                           for i in range(cfg.num_hidden_layers)]
            head = fused(-1)
            embed, lm_head = head["embed"], head["lm_head.weight"]
            assert embed is not None and lm_head is not None
            self.embed: Tensor = embed
            self.lm_head = Linear(lm_head, None, packed, linear_kernels)
            limit = min(max_positions or cfg.max_position_embeddings, 32768)
            positions = torch.arange(limit, device=self.device, dtype=torch.float32)
            inv_freq, scaling = rope
            freqs = torch.outer(positions, inv_freq.float().to(self.device))
            emb = torch.cat([freqs, freqs], dim=-1)
            self.cos = (emb.cos() * scaling).to(self.dtype)
            # rotate_half(x)·sin = roll(x, half)·(-sin₁, sin₂): one roll instead of rotated
            # copies of the q and k weights (less to read per token, the same numbers).
            half = self.head_dim // 2
            sin = emb.sin() * scaling
            self.sin = torch.cat([-sin[:, :half], sin[:, half:]], dim=-1).to(self.dtype)
        self.max_positions = limit
        qk = (self.heads + self.kv_heads) * self.head_dim
        self._split = (qk, self.kv_heads * self.head_dim)
        self.cache = SlotCache(len(self.layers), self.kv_heads, self.head_dim, dtype, device)
        self.group = self.heads // self.kv_heads  # query heads per key/value head
        # Decode steps entirely on the kernels when they take this attention's shape.
        self.step_kernels: Any = (
            linear_kernels if linear_kernels is not None
            and linear_kernels.has_decode_step(self.group, self.head_dim) else None)

    def _norm(self, x: Tensor) -> Tensor:
        """RMSNorm without a gain (folded into the next weights): the C++ kernel if built."""
        if self.kernels is not None:
            return self.kernels.rms_norm(x.contiguous(), self.eps)  # type: ignore[no-any-return]
        return F.rms_norm(x, (self.hidden,), None, self.eps)

    # -- the cache (the engine's view of it) -------------------------------------------------

    @property
    def rows_cap(self) -> int:
        return self.cache.rows_cap

    def bytes_per_token(self) -> int:
        """Cache bytes one token of one request takes."""
        return self.cache.bytes_per_token()

    def reserve(self, rows: int, length: int) -> None:
        """Grow the cache to at least `rows` × `length` positions."""
        self.cache.reserve(rows, length)

    def release(self) -> None:
        """Free the cache (when nothing runs)."""
        self.cache.release()

    def move_row(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` cached positions of row `src` into row `dst`."""
        self.cache.move_row(src, dst, length)

    def save_prefix(self, row: int, length: int) -> Any:
        """A copy of the first `length` cached positions of `row`."""
        return self.cache.save_prefix(row, length)

    def load_prefix(self, row: int, prefix: Any) -> None:
        """Put a saved prefix at the start of `row`."""
        self.cache.load_prefix(row, prefix)

    # -- the model ---------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, first_row: int, prompts: list[list[int]],
                cached: list[int] | None = None) -> Tensor:
        """Run prompts into rows first_row, first_row+1, ...; return last-token logits.

        `cached[j]` positions of prompt j are already in its row (a shared prefix loaded with
        `load_prefix`); only the rest is computed.
        """
        dev = self.device
        done = cached or [0] * len(prompts)
        lengths = [len(p) for p in prompts]
        fresh = [n - c for n, c in zip(lengths, done, strict=True)]
        count, longest = len(prompts), max(lengths)
        self.reserve(first_row + count, longest)
        tokens = torch.tensor([t for p, c in zip(prompts, done, strict=True) for t in p[c:]],
                              device=dev)
        positions = torch.cat([torch.arange(c, n, device=dev)
                               for n, c in zip(lengths, done, strict=True)])
        rows = torch.cat([torch.full((n,), i, device=dev) for i, n in enumerate(fresh)])
        cos = self.cos[positions].unsqueeze(1)
        sin = self.sin[positions].unsqueeze(1)
        masks = [None if c == 0 else
                 torch.arange(n, device=dev)[None, :]
                 <= torch.arange(c, n, device=dev)[:, None]
                 for n, c in zip(lengths, done, strict=True)]
        x = self.embed[tokens]
        hd, nh, nkv = self.head_dim, self.heads, self.kv_heads
        starts = [0]
        for n in fresh:
            starts.append(starts[-1] + n)
        for i, layer in enumerate(self.layers):
            h = self._norm(x)
            a, v = layer.qkv(h).split(self._split, dim=-1)
            a = a.view(-1, nh + nkv, hd)
            qk = torch.addcmul(a * cos, a.roll(hd // 2, -1), sin)
            kc = self.cache.k[i][first_row : first_row + count]
            vc = self.cache.v[i][first_row : first_row + count]
            kc[rows, :, positions] = qk[:, nh:]
            vc[rows, :, positions] = v.view(-1, nkv, hd)
            q = qk[:, :nh].transpose(0, 1)  # [heads, tokens, head_dim]
            # One prompt at a time: a padded batch would change the sums with its length.
            parts = [
                F.scaled_dot_product_attention(
                    q[None, :, starts[j] : starts[j + 1]], kc[j : j + 1, :, :n],
                    vc[j : j + 1, :, :n], attn_mask=masks[j], is_causal=masks[j] is None,
                    scale=self.scale, enable_gqa=True,
                )[0]
                for j, n in enumerate(lengths)
            ]
            attn = torch.cat(parts, dim=1).transpose(0, 1).reshape(-1, nh * hd)
            x = layer.o.plus(attn, x)
            h = self._norm(x)
            x = layer.down.plus(layer.swiglu(h), x)
        last = torch.tensor(fresh, device=dev).cumsum(0) - 1
        h = self._norm(x[last])
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
        if self.step_kernels is not None:
            return self._decode_on_kernels(tok, pos)
        # Where each row's new key/value goes in a layer's cache seen as [rows*heads*len, dim].
        slots = ((torch.arange(n, device=dev)[:, None] * self.kv_heads
                  + torch.arange(self.kv_heads, device=dev)[None, :]) * self.cache.len_cap
                 + pos[:, None])
        slots = slots.reshape(-1)
        cos = self.cos[pos].unsqueeze(1)
        sin = self.sin[pos].unsqueeze(1)
        hd, nh, nkv = self.head_dim, self.heads, self.kv_heads
        group = self.group
        fused = self.kernels.decode_attention if self.kernels is not None else None
        if fused is not None:
            lengths = pos + 1
        else:  # -inf where a row's cache has not reached (one mask for all layers)
            hidden_keys = (torch.arange(span, device=dev) > pos[:, None]).view(n, 1, 1, span)
            mask = torch.zeros(n, nkv, group, span, dtype=self.dtype, device=dev)
            mask.masked_fill_(hidden_keys, float("-inf"))
            mask = mask.view(n * nkv, group, span)
        x = self.embed[tok]
        for i, layer in enumerate(self.layers):
            h = self._norm(x)
            a, v = layer.qkv(h).split(self._split, dim=-1)
            a = a.view(n, nh + nkv, hd)
            qk = torch.addcmul(a * cos, a.roll(hd // 2, -1), sin)
            kc, vc = self.cache.k[i], self.cache.v[i]
            kc.view(-1, hd).index_copy_(0, slots, qk[:, nh:].reshape(-1, hd))
            vc.view(-1, hd).index_copy_(0, slots, v.reshape(-1, hd))
            if fused is not None:
                q = qk[:, :nh].reshape(n, nkv, group, hd).contiguous()
                attn = fused(q, kc, vc, lengths, self.scale).view(n, nh * hd)  # type: ignore[misc]
            else:
                q = qk[:, :nh].reshape(n * nkv, group, hd)
                keys = kc[:n, :, :span].reshape(n * nkv, span, hd)  # a copy: bmm is faster so
                scores = torch.baddbmm(mask, q, keys.transpose(1, 2), alpha=self.scale)
                probs = torch.softmax(scores, dim=-1)
                values = vc[:n, :, :span].view(n * nkv, span, hd)
                attn = torch.bmm(probs, values).view(n, nh * hd)
            x = layer.o.plus(attn, x)
            h = self._norm(x)
            x = layer.down.plus(layer.swiglu(h), x)
        h = self._norm(x)
        return self.lm_head(h)

    def _decode_on_kernels(self, tok: Tensor, pos: Tensor) -> Tensor:
        """`decode` on the C++ kernels: a layer is two norms, three matrix products and one
        call for RoPE, the cache write and attention (the same numbers as the torch path up to
        rounding: RoPE is rounded once here, twice there)."""
        k = self.step_kernels
        cos, sin = self.cos[pos], self.sin[pos]
        x = self.embed[tok]
        for i, layer in enumerate(self.layers):
            qkv = layer.qkv(k.rms_norm(x, self.eps))
            attn = k.decode_step(qkv, cos, sin, self.cache.k[i], self.cache.v[i], pos,
                                 self.group, self.scale)
            x = layer.o.plus(attn, x)
            x = layer.down.plus(layer.swiglu(k.rms_norm(x, self.eps)), x)
        return self.lm_head(k.rms_norm(x, self.eps))  # type: ignore[no-any-return]
