"""A small BERT encoder (the sentence embedder's model) straight from a safetensors folder.

transformers' `AutoModel` would import its whole modelling stack first (seconds of a cold
start) and, while loading, changes torch's process-wide default dtype, which is unsafe
while another thread loads or runs a model. This reads the weights with plain file reads
and computes the same encoder (post-LayerNorm, GELU, absolute positions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_service.llama.weights import TensorFile


class Bert:
    """`model(input_ids, attention_mask)` → the last hidden states [batch, tokens, hidden]."""

    def __init__(self, cfg: dict[str, Any], get: dict[str, Tensor]) -> None:
        self.heads = int(cfg["num_attention_heads"])
        self.hidden = int(cfg["hidden_size"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.w = get
        self.layers = int(cfg["num_hidden_layers"])

    @classmethod
    def from_folder(cls, folder: Path, device: str = "cpu") -> Bert | None:
        """None when the folder is not a plain BERT this class computes (the caller falls
        back to transformers)."""
        config, weights = folder / "config.json", folder / "model.safetensors"
        if not config.exists() or not weights.exists():
            return None
        cfg = json.loads(config.read_text())
        if (cfg.get("model_type") != "bert" or cfg.get("hidden_act", "gelu") != "gelu"
                or cfg.get("position_embedding_type", "absolute") != "absolute"):
            return None
        with TensorFile(weights) as source:
            prefix = "bert." if "bert.embeddings.word_embeddings.weight" in source.entries else ""
            get = {name[len(prefix):]: source.read(name).to(device=device, dtype=torch.float32)
                   for name in source.names
                   if name.startswith(prefix) and not name.endswith("position_ids")}
        needed = [f"encoder.layer.{i}.output.LayerNorm.bias"
                  for i in range(cfg["num_hidden_layers"])]
        if "embeddings.word_embeddings.weight" not in get or any(n not in get for n in needed):
            return None
        return cls(cfg, get)

    def _linear(self, x: Tensor, name: str) -> Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def _norm(self, x: Tensor, name: str) -> Tensor:
        return F.layer_norm(x, (self.hidden,), self.w[name + ".weight"], self.w[name + ".bias"],
                            self.eps)

    @torch.inference_mode()
    def __call__(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        w = self.w
        batch, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device)
        x = (w["embeddings.word_embeddings.weight"][input_ids]
             + w["embeddings.position_embeddings.weight"][positions][None]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        keep = attention_mask.bool()[:, None, None, :]  # padding is never attended to
        hd = self.hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(t: Tensor) -> Tensor:
                return t.view(batch, length, self.heads, hd).transpose(1, 2)

            q = heads(self._linear(x, p + "attention.self.query"))
            k = heads(self._linear(x, p + "attention.self.key"))
            v = heads(self._linear(x, p + "attention.self.value"))
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
            attn = attn.transpose(1, 2).reshape(batch, length, self.hidden)
            x = self._norm(self._linear(attn, p + "attention.output.dense") + x,
                           p + "attention.output.LayerNorm")
            inner = F.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(self._linear(inner, p + "output.dense") + x, p + "output.LayerNorm")
        return x
