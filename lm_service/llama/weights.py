"""Weights for the fast runner: safetensors reads, fusing and folding, the prepared file."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import torch
from torch import Tensor

SUPPORTED_TYPES = frozenset({"llama", "mistral", "qwen2"})
_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
           "I64": torch.int64}


class Weights(Protocol):
    def __call__(self, name: str, required: bool = True) -> Any: ...


Fused = Callable[[int], dict[str, Tensor | None]]  # layer index (-1: embeddings and head)


def supports_config(cfg: Any) -> bool:
    """True for the architectures `FastLlama` implements."""
    if getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return False
    if getattr(cfg, "use_sliding_window", False) or getattr(cfg, "mlp_bias", False):
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu":
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


def read_config(folder: Path) -> Any:
    """The model's `config.json` as attributes, with the defaults `FastLlama` relies on; None
    when there is none. (transformers' `AutoConfig` would import its modelling code: seconds
    of a cold start. Only configs `supports_config` accepts are used from here.)"""
    path = folder / "config.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    cfg = SimpleNamespace(**data)
    cfg.num_key_value_heads = data.get("num_key_value_heads") or data["num_attention_heads"]
    cfg.head_dim = data.get("head_dim") or data["hidden_size"] // data["num_attention_heads"]
    cfg.rms_norm_eps = data.get("rms_norm_eps", 1e-6)
    cfg.max_position_embeddings = data.get("max_position_embeddings", 2048)
    # Older files keep the RoPE settings in `rope_theta` / `rope_scaling`.
    params = dict(data.get("rope_parameters") or data.get("rope_scaling") or {})
    params.setdefault("rope_theta", data.get("rope_theta", 10000.0))
    cfg.rope_parameters = params
    return cfg


class TensorFile:
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
        tensor = torch.empty(entry["shape"], dtype=_DTYPES[entry["dtype"]])
        # Straight into the tensor's memory: no intermediate copy of the bytes.
        view = tensor.view(-1).view(torch.uint8).numpy().data
        if self.handle.readinto(view) != end - start:
            raise OSError(f"{name}: the file ends early")
        return tensor

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


@contextlib.contextmanager
def folder_weights(folder: Path, device: str, dtype: torch.dtype) -> Iterator[Weights | None]:
    """`get(name)` over a safetensors folder (one file or an index of shards), each tensor
    read when asked for; None when the folder has no safetensors weights."""
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if index.exists():
        files = {name: folder / file
                 for name, file in json.loads(index.read_text())["weight_map"].items()}
    elif single.exists():
        files = {}
    else:
        yield None
        return
    with contextlib.ExitStack() as stack:
        readers: dict[Path, TensorFile] = {}

        def reader(path: Path) -> TensorFile:
            if path not in readers:
                readers[path] = stack.enter_context(TensorFile(path))
            return readers[path]

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

        yield get


def _scaled(weight: Tensor, gain: Tensor) -> Tensor:
    """W·diag(g): a linear layer that reads g ⊙ x, as one that reads x."""
    return (weight.float() * gain[None, :]).to(weight.dtype)


def _fuse_layer(get: Weights, prefix: str, cfg: Any) -> dict[str, Tensor | None]:
    """One layer's weights as the runner uses them: q, k and v in one matrix, and the RMSNorm
    gains folded into the matrices that read the normalised vector."""
    a, m = prefix + "self_attn.", prefix + "mlp."
    g1 = get(prefix + "input_layernorm.weight").float()
    g2 = get(prefix + "post_attention_layernorm.weight").float()
    wq, wk, wv = (_scaled(get(a + n + "_proj.weight"), g1) for n in "qkv")
    bias = None
    bq = get(a + "q_proj.bias", required=False)
    if bq is not None:
        bk, bv = get(a + "k_proj.bias"), get(a + "v_proj.bias")
        bias = torch.cat([bq, bk, bv])
    return {
        "qkv.weight": torch.cat([wq, wk, wv]),
        "qkv.bias": bias,
        "o.weight": get(a + "o_proj.weight"),
        "o.bias": get(a + "o_proj.bias", required=False),
        "gate.weight": _scaled(get(m + "gate_proj.weight"), g2),
        "up.weight": _scaled(get(m + "up_proj.weight"), g2),
        "down.weight": get(m + "down_proj.weight"),
    }


def fuser(get: Weights, cfg: Any) -> Fused:
    """The fused weights of layer `index` (-1: embeddings and the norm-folded head)."""
    def fused(index: int) -> dict[str, Tensor | None]:
        if index >= 0:
            return _fuse_layer(get, f"model.layers.{index}.", cfg)
        gain = get("model.norm.weight").float()
        return {"embed": get("model.embed_tokens.weight"),
                "lm_head.weight": _scaled(get("lm_head.weight"), gain)}

    return fused


def prepared(path: Path, device: str, dtype: torch.dtype) -> Fused:
    """Fused weights saved by an earlier start (see `FastLlama.from_folder`)."""
    def fused(index: int) -> dict[str, Tensor | None]:
        names = (["embed", "lm_head.weight"] if index < 0 else
                 [f"{index}.{n}.{k}" for n in ("qkv", "o", "gate", "up", "down")
                  for k in ("weight", "bias")])
        with TensorFile(path) as source:
            out: dict[str, Tensor | None] = {}
            for name in names:
                key = name if index < 0 else name.split(".", 1)[1]
                out[key] = (source.read(name).to(device=device, dtype=dtype)
                            if name in source.entries else None)
            return out

    return fused


def keeping(fused: Fused) -> tuple[Fused, dict[str, Tensor]]:
    """`fused`, also keeping every tensor it hands out (to `save` them as the prepared file)."""
    kept: dict[str, Tensor] = {}

    def keep(index: int) -> dict[str, Tensor | None]:
        weights = fused(index)
        for name, tensor in weights.items():
            if tensor is not None:
                kept[name if index < 0 else f"{index}.{name}"] = tensor.contiguous()
        return weights

    return keep, kept


def save(tensors: dict[str, Tensor], path: Path) -> None:
    """Write `tensors` as one safetensors file, atomically (several processes may start)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    save_file({k: v.cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
