"""Linear layers with weights prepacked for oneDNN (bfloat16 on CPU), batch-invariant."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


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


class Layer:
    """One decoder layer's linear maps: fused qkv, o, gate, up, down."""

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
