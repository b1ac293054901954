"""Choosing the next token (greedy, temperature, top-p, seeded) and following the text."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor

from lm_service.api import GenerationRequest


class Sampler:
    """The token-choosing settings of one request; seeded so a re-run repeats itself."""

    def __init__(self, request: GenerationRequest, device: torch.device | str = "cpu") -> None:
        self.greedy = request.temperature <= 0.0
        self.temperature = max(request.temperature, 1e-5)
        self.top_p = request.top_p
        self.generator: torch.Generator | None = None
        if not self.greedy:
            seed = request.seed if request.seed is not None else random.getrandbits(63)
            self.generator = torch.Generator(device=device).manual_seed(seed)

    def sample(self, logits: Tensor) -> int:
        """One token from a row of logits."""
        scores = logits.float() / self.temperature
        probs = torch.softmax(scores, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            cumulative = sorted_probs.cumsum(-1)
            keep = cumulative - sorted_probs < self.top_p
            keep[0] = True
            sorted_probs = sorted_probs * keep
            choice = torch.multinomial(sorted_probs, 1, generator=self.generator)
            return int(order[choice])
        return int(torch.multinomial(probs, 1, generator=self.generator))


def pick_tokens(logits: Tensor, samplers: list[Sampler]) -> list[int]:
    """The next token of every row: one argmax for all greedy rows, sampling for the rest."""
    # argmax over float32: several times faster on CPU than over bfloat16, same answer.
    tokens: list[int] = logits.float().argmax(dim=-1).tolist()
    for i, sampler in enumerate(samplers):
        if not sampler.greedy:
            tokens[i] = sampler.sample(logits[i])
    return tokens


class TextTracker:
    """Decodes a request's tokens as they come, finds stop strings and yields safe deltas.

    Text that might be the start of a stop string is held back until it is known not to be,
    so a streaming caller never sees text that the final answer leaves out.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.text = ""
        self.sent = 0
        self.stopped = False

    def update(self, tokens: list[int]) -> None:
        """Decode all tokens so far; cut at the first stop string (sets `stopped`)."""
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an unfinished multi-byte character
            text = text.rstrip("\ufffd")
        for stop in self.stop:
            at = text.find(stop)
            if at >= 0:
                text = text[:at]
                self.stopped = True
        self.text = text

    def delta(self, final: bool = False) -> str:
        """Text not yet handed out that can no longer change."""
        end = len(self.text)
        if not final and not self.stopped:
            end -= self._held_back()
        if end <= self.sent:
            return ""
        out = self.text[self.sent : end]
        self.sent = end
        return out

    def _held_back(self) -> int:
        longest = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
