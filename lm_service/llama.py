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

import contextlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

SUPPORTED_TYPES = frozenset({"llama", "mistral", "qwen2"})


class Linear:
    """y = x·Wᵀ (+ b); on CPU in bfloat16 the weight is prepacked for oneDNN once.

    For a long reduction (in_features > 1024) oneDNN picks a different kernel for one row and
    for more than ~22 rows, which changes the last bits of a row now and then: such layers are
    called in chunks of 2..`CHUNK` rows, so that every row's result is the same in any batch.
    """

    CHUNK = 16

    def __init__(self, weight: Tensor, bias: Tensor | None, packed: bool) -> None:
        self.out_features = weight.shape[0]
        self.bias = bias
        self.packed = packed
        self.chunked = packed and weight.shape[1] > 1024
        self.weight = (
            torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 16)
            if packed
            else weight.contiguous()
        )

    def __call__(self, x: Tensor, silu: bool = False) -> Tensor:
        if self.packed:
            attr = "swish" if silu else "none"
            return self._rows(lambda part, _: torch.ops.mkldnn._linear_pointwise(
                part, self.weight, self.bias, attr, [], ""), x, None)
        y = F.linear(x, self.weight, self.bias)
        return F.silu(y) if silu else y

    def times(self, x: Tensor, other: Tensor) -> Tensor:
        """(x·Wᵀ) * other."""
        if self.packed:
            return self._rows(lambda part, rest: torch.ops.mkldnn._linear_pointwise.binary(
                part, rest, self.weight, self.bias, "mul"), x, other)
        return F.linear(x, self.weight, self.bias) * other

    def plus(self, x: Tensor, other: Tensor) -> Tensor:
        """(x·Wᵀ) + other."""
        if self.packed:
            return self._rows(lambda part, rest: torch.ops.mkldnn._linear_pointwise.binary(
                part, rest, self.weight, self.bias, "add"), x, other)
        return F.linear(x, self.weight, self.bias) + other

    def _rows(self, op: Any, x: Tensor, other: Tensor | None) -> Tensor:
        if not self.chunked:
            return op(x, other)  # type: ignore[no-any-return]
        parts = []
        for i in range(0, x.shape[0], self.CHUNK):
            part = x[i : i + self.CHUNK]
            rest = None if other is None else other[i : i + self.CHUNK]
            if part.shape[0] == 1:  # one row takes another kernel: compute it as two
                part = part.expand(2, -1)
                rest = None if rest is None else rest.expand(2, -1)
                parts.append(op(part, rest)[:1])
            else:
                parts.append(op(part, rest))
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _rotated(weight: Tensor, heads: int, head_dim: int) -> Tensor:
    """Rows that compute rotate_half(x·Wᵀ) directly: per head, (-second half, first half)."""
    w = weight.reshape(heads, head_dim, *weight.shape[1:])
    half = head_dim // 2
    return torch.cat([-w[:, half:], w[:, :half]], dim=1).reshape(weight.shape)


def _fuse_layer(get: Weights, prefix: str, cfg: Any) -> dict[str, Tensor | None]:
    """One layer's weights as the runner uses them: q, k, rotate_half(q), rotate_half(k), v
    in one matrix, and the RMSNorm gains folded into the matrices that read the normalised
    vector."""
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    a, m = prefix + "self_attn.", prefix + "mlp."
    g1 = get(prefix + "input_layernorm.weight").float()
    g2 = get(prefix + "post_attention_layernorm.weight").float()
    wq, wk, wv = (_scaled(get(a + n + "_proj.weight"), g1) for n in "qkv")
    bias = None
    bq = get(a + "q_proj.bias", required=False)
    if bq is not None:
        bk, bv = get(a + "k_proj.bias"), get(a + "v_proj.bias")
        bias = torch.cat([bq, bk, _rotated(bq, nh, hd), _rotated(bk, nkv, hd), bv])
    return {
        "qkv.weight": torch.cat([wq, wk, _rotated(wq, nh, hd), _rotated(wk, nkv, hd), wv]),
        "qkv.bias": bias,
        "o.weight": get(a + "o_proj.weight"),
        "o.bias": get(a + "o_proj.bias", required=False),
        "gate.weight": _scaled(get(m + "gate_proj.weight"), g2),
        "up.weight": _scaled(get(m + "up_proj.weight"), g2),
        "down.weight": get(m + "down_proj.weight"),
    }


class _Layer:
    def __init__(self, weights: dict[str, Tensor | None], packed: bool) -> None:
        def linear(name: str) -> Linear:
            weight = weights[name + ".weight"]
            assert weight is not None
            return Linear(weight, weights.get(name + ".bias"), packed)

        self.qkv = linear("qkv")
        self.o = linear("o")
        self.gate = linear("gate")
        self.up = linear("up")
        self.down = linear("down")


def _scaled(weight: Tensor, gain: Tensor) -> Tensor:
    """W·diag(g): a linear layer that reads g ⊙ x, as one that reads x."""
    return (weight.float() * gain[None, :]).to(weight.dtype)


_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


class _TensorFile:
    """Reads tensors from a safetensors file with plain reads, one at a time.

    (Memory-mapping it, as `safetensors.safe_open` does, counts every page read as resident
    memory of this process for as long as any tensor refers to the mapping.)
    """

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "rb")
        size = int.from_bytes(self.handle.read(8), "little")
        header = json.loads(self.handle.read(size))
        header.pop("__metadata__", None)
        self.base = 8 + size
        self.entries: dict[str, Any] = header
        self.names = list(header)

    def read(self, name: str) -> Tensor:
        entry = self.entries[name]
        start, end = entry["data_offsets"]
        self.handle.seek(self.base + start)
        data = bytearray(self.handle.read(end - start))
        return torch.frombuffer(data, dtype=_DTYPES[entry["dtype"]]).reshape(entry["shape"])

    def __enter__(self) -> _TensorFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


class Weights(Protocol):
    def __call__(self, name: str, required: bool = True) -> Any: ...


Fused = Callable[[int], dict[str, Tensor | None]]  # layer index (-1: embeddings and head)


def _fuser(get: Weights, cfg: Any) -> Fused:
    def fused(index: int) -> dict[str, Tensor | None]:
        if index >= 0:
            return _fuse_layer(get, f"model.layers.{index}.", cfg)
        gain = get("model.norm.weight").float()
        return {"embed": get("model.embed_tokens.weight"),
                "lm_head.weight": _scaled(get("lm_head.weight"), gain)}

    return fused


def _prepared(path: Path, cfg: Any, device: str, dtype: torch.dtype) -> Fused:
    """Fused weights saved by an earlier start (see `FastLlama.from_folder`)."""
    def fused(index: int) -> dict[str, Tensor | None]:
        names = (["embed", "lm_head.weight"] if index < 0 else
                 [f"{index}.{n}.{k}" for n in ("qkv", "o", "gate", "up", "down")
                  for k in ("weight", "bias")])
        with _TensorFile(path) as source:
            out: dict[str, Tensor | None] = {}
            for name in names:
                key = name if index < 0 else name.split(".", 1)[1]
                out[key] = (source.read(name).to(device=device, dtype=dtype)
                            if name in source.entries else None)
            return out

    return fused


def supports_config(cfg: Any) -> bool:
    """True for the architectures `FastLlama` implements."""
    if getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return False
    if getattr(cfg, "use_sliding_window", False):
        return False
    return not (cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None))


def default_rope(cfg: Any) -> tuple[Tensor, float] | None:
    """(inv_freq, attention_scaling) for plain RoPE; None for scaled variants."""
    params = getattr(cfg, "rope_parameters", None) or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        return None
    theta = float(params.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
    dim = int(cfg.head_dim * float(params.get("partial_rotary_factor", 1.0)))
    if dim != cfg.head_dim:
        return None
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    return inv_freq, 1.0


class FastLlama:
    """Prefill and decode over a slot KV cache for Llama, Mistral and Qwen2 models."""

    @staticmethod
    def supports(model: Any) -> bool:
        """True for the architectures this class implements (else the engine falls back)."""
        inner = getattr(model, "model", None)
        return (supports_config(model.config) and hasattr(inner, "rotary_emb")
                and hasattr(inner, "layers"))

    @classmethod
    def from_model(cls, model: Any, max_positions: int | None = None) -> FastLlama:
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
        return cls(model.config, _fuser(get, model.config), rope, model.dtype, model.device,
                   max_positions)

    @classmethod
    def from_folder(cls, folder: Path, dtype: torch.dtype, device: str,
                    max_positions: int | None = None, prepared: Path | None = None
                    ) -> FastLlama | None:
        """Straight from a safetensors folder, one tensor at a time (no transformers model:
        faster to start and no second copy of the weights). None if not supported here.

        `prepared`: a file for the fused weights; written on the first start, read on later
        ones (which then skip the fusing: seconds of a cold start).
        """
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
        if not supports_config(cfg):
            return None
        cfg.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        rope = default_rope(cfg)
        index = folder / "model.safetensors.index.json"
        if index.exists():
            files = {name: folder / file
                     for name, file in json.loads(index.read_text())["weight_map"].items()}
        elif (folder / "model.safetensors").exists():
            files = {}
        else:
            return None
        if rope is None:
            return None
        with contextlib.ExitStack() as stack:
            readers: dict[Path, _TensorFile] = {}

            def reader(path: Path) -> _TensorFile:
                if path not in readers:
                    readers[path] = stack.enter_context(_TensorFile(path))
                return readers[path]

            single = folder / "model.safetensors"
            names = set(files) if files else set(reader(single).names)

            def get(name: str, required: bool = True) -> Any:
                if name not in names and name == "lm_head.weight":
                    name = "model.embed_tokens.weight"
                if name not in names:
                    if required:
                        raise KeyError(name)
                    return None
                tensor = reader(files.get(name, single)).read(name)
                return tensor.to(device=device, dtype=dtype)

            if prepared is not None and prepared.exists():
                return cls(cfg, _prepared(prepared, cfg, device, dtype), rope, dtype,
                           torch.device(device), max_positions)
            fused = _fuser(get, cfg)
            if prepared is None:
                return cls(cfg, fused, rope, dtype, torch.device(device), max_positions)
            kept: dict[str, Tensor] = {}

            def keeping(index: int) -> dict[str, Tensor | None]:
                weights = fused(index)
                for name, tensor in weights.items():
                    if tensor is not None:
                        kept[name if index < 0 else f"{index}.{name}"] = tensor.contiguous()
                return weights

            runner = cls(cfg, keeping, rope, dtype, torch.device(device), max_positions)
            _save(kept, prepared)
            return runner


    def __init__(self, cfg: Any, fused: Fused, rope: tuple[Tensor, float], dtype: torch.dtype,
                 device: torch.device, max_positions: int | None = None) -> None:
        self.dtype = dtype
        self.device = device
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
            self.layers = []
            for i in range(cfg.num_hidden_layers):
                weights = fused(i)
                self.layers.append(_Layer(weights, packed))
            head = fused(-1)
            embed, lm_head = head["embed"], head["lm_head.weight"]
            assert embed is not None and lm_head is not None
            self.embed: Tensor = embed
            self.lm_head = Linear(lm_head, None, packed)
            limit = min(max_positions or cfg.max_position_embeddings, 32768)
            positions = torch.arange(limit, device=self.device, dtype=torch.float32)
            inv_freq, scaling = rope
            freqs = torch.outer(positions, inv_freq.float().to(self.device))
            emb = torch.cat([freqs, freqs], dim=-1)
            self.cos = (emb.cos() * scaling).to(self.dtype)
            self.sin = (emb.sin() * scaling).to(self.dtype)
        self.max_positions = limit
        qk = (self.heads + self.kv_heads) * self.head_dim
        self._split = (qk, qk, self.kv_heads * self.head_dim)
        self.kernels: Any = None  # the C++ kernels (lm_service.kernels), if built
        self.k_cache: list[Tensor] = []
        self.v_cache: list[Tensor] = []
        self.rows_cap = 0
        self.len_cap = 0

    def _norm(self, x: Tensor) -> Tensor:
        """RMSNorm without a gain (folded into the next weights): the C++ kernel if built."""
        if self.kernels is not None:
            return self.kernels.rms_norm(x.contiguous(), self.eps)  # type: ignore[no-any-return]
        return F.rms_norm(x, (self.hidden,), None, self.eps)

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
        new_len = max(self.len_cap, -(-length // 32) * 32)
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
                    vc[j : j + 1, :, :n], attn_mask=masks[j], is_causal=masks[j] is None,
                    scale=self.scale, enable_gqa=True,
                )[0]
                for j, n in enumerate(lengths)
            ]
            attn = torch.cat(parts, dim=1).transpose(0, 1).reshape(-1, nh * hd)
            x = layer.o.plus(attn, x)
            h = self._norm(x)
            x = layer.down.plus(layer.up.times(h, layer.gate(h, silu=True)), x)
        last = torch.tensor(fresh, device=dev).cumsum(0) - 1
        h = self._norm(x[last])
        return self.lm_head(h)

    @torch.inference_mode()
    def save_prefix(self, row: int, length: int) -> Any:
        """A copy of the first `length` cached positions of `row` (a shared prompt prefix)."""
        return [(k[row, :, :length].clone(), v[row, :, :length].clone())
                for k, v in zip(self.k_cache, self.v_cache, strict=True)]

    @torch.inference_mode()
    def load_prefix(self, row: int, prefix: Any) -> None:
        """Put a saved prefix at the start of `row` (the cache must hold the row)."""
        for (k, v), kc, vc in zip(prefix, self.k_cache, self.v_cache, strict=True):
            length = k.shape[1]
            kc[row, :, :length] = k
            vc[row, :, :length] = v

    @torch.inference_mode()
    def decode(self, tokens: list[int], positions: list[int]) -> Tensor:
        """One step for rows 0..n-1: token i sits at positions[i]; return logits [n, vocab]."""
        dev = self.device
        n = len(tokens)
        span = max(positions) + 1
        self.reserve(n, span)
        tok = torch.tensor(tokens, device=dev)
        pos = torch.tensor(positions, device=dev)
        # Where each row's new key/value goes in a layer's cache seen as [rows*heads*len, dim].
        slots = ((torch.arange(n, device=dev)[:, None] * self.kv_heads
                  + torch.arange(self.kv_heads, device=dev)[None, :]) * self.len_cap + pos[:, None])
        slots = slots.reshape(-1)
        cos = self.cos[pos].unsqueeze(1)
        sin = self.sin[pos].unsqueeze(1)
        hd, nh, nkv = self.head_dim, self.heads, self.kv_heads
        group = nh // nkv
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
            a, b, v = layer.qkv(h).split(self._split, dim=-1)
            qk = torch.addcmul(a.view(n, nh + nkv, hd) * cos, b.view(n, nh + nkv, hd), sin)
            kc, vc = self.k_cache[i], self.v_cache[i]
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
            x = layer.down.plus(layer.up.times(h, layer.gate(h, silu=True)), x)
        h = self._norm(x)
        return self.lm_head(h)


def _save(tensors: dict[str, Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    save_file({k: v.cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
