"""The C++ kernels against plain torch: the same numbers (to bfloat16 rounding), and every row
the same whether computed alone or in a batch."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lm_service import kernels as k
from lm_service import models
from lm_service.llama import FastLlama
from lm_service.local import InProcessLMClient
from tests.lm_service.decoding import chat_prompt, greedy


def _has_avx512_bf16() -> bool:
    return "avx512_bf16" in Path("/proc/cpuinfo").read_text()


@pytest.fixture(scope="module")
def built(lm_client: InProcessLMClient) -> Any:
    """The session engine's kernels (built by it, or by this call into its cache folder)."""
    module = k.compiled_kernels(lm_client.engine.config.cache_dir / "kernels")
    assert module is not None, "a C++ compiler is installed here: the kernels must build"
    if not module.has_linear():
        assert not _has_avx512_bf16(), "this processor has AVX-512 BF16: `linear` must build"
        pytest.skip("this processor has no AVX-512 BF16 (the engine uses oneDNN here)")
    return module


def _bf16(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape) * scale).to(torch.bfloat16)


@pytest.mark.parametrize("rows", [1, 5, 13, 64])
def test_linear_equals_torch_and_each_row_its_own(built: Any, rows: int) -> None:
    torch.manual_seed(rows)
    x, weight, bias = _bf16(rows, 576), _bf16(960, 576, scale=0.05), torch.randn(960)
    other = _bf16(rows, 960)
    packed = k.pack_linear(weight)
    assert packed is not None
    reference = x.float() @ weight.float().T
    cases = [
        (built.linear(x, packed, torch.empty(0), torch.empty(0), k.PLAIN), reference),
        (built.linear(x, packed, bias, torch.empty(0), k.PLAIN), reference + bias),
        (built.linear(x, packed, torch.empty(0), other, k.ADD), reference + other.float()),
    ]
    for got, want in cases:
        assert got.dtype == torch.bfloat16 and got.shape == want.shape
        torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)
    together = cases[0][0]
    for i in range(rows):
        alone = built.linear(x[i : i + 1].contiguous(), packed, torch.empty(0), torch.empty(0),
                             k.PLAIN)
        assert torch.equal(alone[0], together[i])


def test_swiglu_equals_torch(built: Any) -> None:
    torch.manual_seed(0)
    x, gate, up = _bf16(7, 576), _bf16(1536, 576, scale=0.05), _bf16(1536, 576, scale=0.05)
    packed = k.pack_linear(gate, up)
    assert packed is not None
    got = built.linear(x, packed, torch.empty(0), torch.empty(0), k.SWIGLU)
    want = F.silu(x.float() @ gate.float().T) * (x.float() @ up.float().T)
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)


def test_shapes_the_kernel_cannot_take_are_left_to_torch() -> None:
    assert k.pack_linear(_bf16(20, 576)) is None  # not a multiple of 16 outputs
    assert k.pack_linear(_bf16(16, 575)) is None  # an odd number of inputs
    assert k.pack_linear(torch.randn(16, 576)) is None  # not bfloat16


def test_runner_with_kernels_computes_the_same_model(built: Any,
                                                    lm_client: InProcessLMClient) -> None:
    """The whole model on the kernels against torch ops, fed the same tokens: logits differ by
    rounding only (their sums are rounded in another order, so a near tie can flip: "hi" opens
    with "Hello!" on one and "Hello there" on the other), and a batch decodes each row exactly
    as it would alone."""
    engine = lm_client.engine
    folder = models.model_folder(models.default_lm_path(), torch.bfloat16,
                                 engine.config.cache_dir)
    plain = FastLlama.from_folder(folder, torch.bfloat16, "cpu")
    fast = FastLlama.from_folder(folder, torch.bfloat16, "cpu", kernels=built)
    assert plain is not None and fast is not None
    assert fast.step_kernels is not None and fast.layers[0].gate_up is not None
    assert plain.step_kernels is None and plain.layers[0].gate_up is None
    prompts = [chat_prompt(engine.tokenizer, text)
               for text in ("What is a tent?", "Do you ship to Canada?", "hi")]
    answers = greedy(plain, prompts, 12)
    ours, theirs = _fed(fast, prompts, answers), _fed(plain, prompts, answers)
    assert (ours - theirs).abs().mean() < 0.3  # logits span about ±35
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean()
    assert agree >= 0.9
    together = greedy(fast, prompts, 12)
    assert together == [greedy(fast, [p], 12)[0] for p in prompts]


class _WithoutLinear:
    """The build a processor without AVX-512 BF16 gets: attention and norms, no `linear`."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def has_linear(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def test_runner_without_the_linear_kernel_still_batches_exactly(
        built: Any, lm_client: InProcessLMClient) -> None:
    """oneDNN linears with the C++ attention (processors without AVX-512 BF16): the same model,
    and each row decoded in a batch exactly as alone."""
    engine = lm_client.engine
    folder = models.model_folder(models.default_lm_path(), torch.bfloat16,
                                 engine.config.cache_dir)
    plain = FastLlama.from_folder(folder, torch.bfloat16, "cpu")
    mixed = FastLlama.from_folder(folder, torch.bfloat16, "cpu", kernels=_WithoutLinear(built))
    assert plain is not None and mixed is not None
    assert mixed.kernels is not None and mixed.step_kernels is None
    assert mixed.layers[0].gate_up is None
    prompts = [chat_prompt(engine.tokenizer, text)
               for text in ("Which tent for winter?", "Can I return worn boots?", "hi")]
    answers = greedy(plain, prompts, 10)
    assert (_fed(mixed, prompts, answers) - _fed(plain, prompts, answers)).abs().mean() < 0.3
    together = greedy(mixed, prompts, 10)
    assert together == [greedy(mixed, [p], 10)[0] for p in prompts]


def _fed(runner: Any, prompts: list[list[int]], answers: list[list[int]]) -> torch.Tensor:
    """Logits [steps, rows, vocab] when each row is fed its `answers` token by token."""
    steps = [runner.prefill(0, prompts).float()]
    positions = [len(p) for p in prompts]
    for i in range(len(answers[0]) - 1):
        steps.append(runner.decode([a[i] for a in answers], positions).float())
        positions = [p + 1 for p in positions]
    return torch.stack(steps)


@pytest.mark.parametrize(("group", "dim"), [(3, 64), (4, 128), (5, 96)])
def test_decode_attention_equals_torch(built: Any, group: int, dim: int) -> None:
    """The portable loop (processors without AVX-512 BF16, shapes `decode_step` does not
    take): each row against its own first `length` cached keys."""
    torch.manual_seed(group)
    rows, heads, cap = 4, 2, 40
    q = _bf16(rows, heads, group, dim)
    keys, values = _bf16(rows, heads, cap, dim), _bf16(rows, heads, cap, dim)
    lengths = torch.tensor([1, 16, 17, 40])
    got = built.decode_attention(q, keys, values, lengths, dim ** -0.5)
    for row, length in enumerate(lengths.tolist()):
        want = F.scaled_dot_product_attention(  # query heads [heads, group, dim] at once
            q[row].float(), keys[row, :, :length].float(), values[row, :, :length].float())
        torch.testing.assert_close(got[row].float(), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(("group", "dim"), [(3, 64), (4, 128)])
def test_decode_step_equals_torch(built: Any, group: int, dim: int) -> None:
    """RoPE on the new query and key, the key and value written at each row's position (and
    nothing else), then attention over the row's cache up to and including it."""
    torch.manual_seed(group)
    rows, kv, cap = 4, 2, 40
    heads = kv * group
    qkv, cos, sin = _bf16(rows, (heads + 2 * kv) * dim), _bf16(rows, dim), _bf16(rows, dim)
    keys, values = _bf16(rows, kv, cap, dim), _bf16(rows, kv, cap, dim)
    cache_k, cache_v = keys.clone(), values.clone()
    positions = torch.tensor([0, 15, 16, 39])
    got = built.decode_step(qkv, cos, sin, cache_k, cache_v, positions, group, dim ** -0.5)
    turned = qkv[:, : (heads + kv) * dim].float().view(rows, heads + kv, dim)
    roped = turned * cos.float()[:, None] + turned.roll(dim // 2, -1) * sin.float()[:, None]
    fresh_v = qkv[:, (heads + kv) * dim :].view(rows, kv, dim)
    for row, pos in enumerate(positions.tolist()):
        torch.testing.assert_close(cache_k[row, :, pos].float(), roped[row, heads:],
                                   rtol=1e-2, atol=1e-2)
        assert torch.equal(cache_v[row, :, pos], fresh_v[row])
        assert torch.equal(cache_k[row, :, :pos], keys[row, :, :pos])
        assert torch.equal(cache_k[row, :, pos + 1 :], keys[row, :, pos + 1 :])
        query = roped[row, :heads].view(kv, group, dim).to(torch.bfloat16).float()
        want = F.scaled_dot_product_attention(query, cache_k[row, :, : pos + 1].float(),
                                              cache_v[row, :, : pos + 1].float())
        torch.testing.assert_close(got[row].view(kv, group, dim).float(), want,
                                   rtol=2e-2, atol=2e-2)


def test_kernels_let_other_threads_run(built: Any) -> None:
    """A kernel call does not hold the GIL: the thread that runs the bot's event loop keeps
    running while a decode step computes on another."""
    torch.manual_seed(0)
    x, weight = _bf16(8192, 576), _bf16(3072, 576, scale=0.05)
    packed = k.pack_linear(weight)
    assert packed is not None
    span: list[float] = []

    def compute() -> None:
        started = time.perf_counter()
        built.linear(x, packed, torch.empty(0), torch.empty(0), k.PLAIN)
        span.extend([started, time.perf_counter()])

    worker = threading.Thread(target=compute)
    ticks: list[float] = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    started, ended = span
    during = [t for t in ticks if started <= t <= ended]
    gaps = [b - a for a, b in zip([started, *during], [*during, ended], strict=True)]
    assert ended - started > 0.02  # long enough to tell
    assert max(gaps) < (ended - started) / 2, "the main thread waited for the whole call"
