"""The fast path for Llama-family models: fused, prepacked weights and a KV cache of slots.

Every running request owns one row ("slot") of the cache; rows 0..n-1 are the running ones.
A request that joins gets the next row and is prefilled there; one that finishes hands its
row to the last one. The batch therefore changes between any two decode steps (continuous
batching) without copying the cache of the others.

Bitwise batch invariance (greedy output equal batched or alone) holds because oneDNN's bf16
matmul gives each row the same result whatever the batch size, each prompt is prefilled whole,
and masked cache positions add exact zeros.

- `weights`: reading safetensors, fusing and folding the weights, the prepared-weights file;
- `linear`: the prepacked linear layers; `cache`: the slot KV cache;
- `runner`: `FastLlama`, prefill and decode.
"""

from lm_service.llama.runner import FastLlama
from lm_service.llama.weights import SUPPORTED_TYPES, default_rope, supports_config

__all__ = ["SUPPORTED_TYPES", "FastLlama", "default_rope", "supports_config"]
