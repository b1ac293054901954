"""Linear layers, batch-invariant: our C++ kernel over packed weights when built, else weights
prepacked for oneDNN (bfloat16 on CPU) or plain torch."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_service.kernels import ADD, PLAIN, SWIGLU, pack_linear

_NONE = torch.empty(0)  # the kernel's "no bias" / "no other operand"


class Linear:
    """y = x·Wᵀ (+ b). With `kernels` (lm_service.kernels) the weight is packed for our C++
    kernel, which sums every row in one order in any batch. Otherwise, on CPU in bfloat16, it
    is prepacked for oneDNN once.

    With a long reduction (in_features > 1024) oneDNN picks a different kernel for one row and
    for more than ~22 rows, which changes the last bits of a row now and then: such layers are
    called in chunks of 2..`CHUNK` rows, so that every row's result is the same in any batch.
    """

    CHUNK = 16

    def __init__(self, weight: Tensor, bias: Tensor | None, packed: bool,
                 kernels: Any = None) -> None:
        self.out_features = weight.shape[0]
        self.bias = bias
        self.kernel: Any = None
        blocks = pack_linear(weight) if kernels is not None else None
        if blocks is not None:  # our kernel: only the packed copy is kept
            self.kernel = kernels.linear
            self.bias32 = _NONE if bias is None else bias.float().contiguous()
            self.packed = self.chunked = False
            self.weight = blocks
            return
        self.packed = packed
        self.chunked = packed and weight.shape[1] > 1024
        self.weight = (
            torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 16)
            if packed
            else weight.contiguous()
        )

    def __call__(self, x: Tensor, silu: bool = False) -> Tensor:
        if self.kernel is not None:
            assert not silu, "packed for the kernel: SwiGLU goes through Layer.swiglu"
            return self.kernel(x.contiguous(), self.weight, self.bias32,  # type: ignore[no-any-return]
                               _NONE, PLAIN)
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
        if self.kernel is not None:
            return self.kernel(x.contiguous(), self.weight, self.bias32,  # type: ignore[no-any-return]
                               other.contiguous(), ADD)
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
    """One decoder layer's linear maps: fused qkv, o, gate and up (SwiGLU), down."""

    def __init__(self, weights: dict[str, Tensor | None], packed: bool,
                 kernels: Any = None) -> None:
        def weight(name: str) -> Tensor:
            value = weights[name + ".weight"]
            assert value is not None
            return value

        def linear(name: str, use_kernels: bool = True) -> Linear:
            return Linear(weight(name), weights.get(name + ".bias"), packed,
                          kernels if use_kernels else None)

        self.qkv = linear("qkv")
        self.o = linear("o")
        self.down = linear("down")
        self.gate_up = (pack_linear(weight("gate"), weight("up"))
                        if kernels is not None else None)
        self._kernel = kernels.linear if self.gate_up is not None else None
        if self.gate_up is None:
            self.gate, self.up = linear("gate", False), linear("up", False)

    def swiglu(self, h: Tensor) -> Tensor:
        """silu(h·Gateᵀ) * (h·Upᵀ)."""
        if self._kernel is not None:
            return self._kernel(h.contiguous(), self.gate_up, _NONE,  # type: ignore[no-any-return]
                                _NONE, SWIGLU)
        return self.up.times(h, self.gate(h, silu=True))
