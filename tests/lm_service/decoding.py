"""Greedy decoding straight on a runner (no engine), for tests that compare runners."""

from __future__ import annotations

from typing import Any


def chat_prompt(tokenizer: Any, text: str) -> list[int]:
    """The token ids of one user message, ready for the answer."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                        add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def greedy(runner: Any, prompts: list[list[int]], steps: int) -> list[list[int]]:
    """`steps` greedy tokens for each prompt, all prompts in one batch."""
    logits = runner.prefill(0, prompts)
    tokens = logits.float().argmax(-1).tolist()
    out = [[t] for t in tokens]
    positions = [len(p) for p in prompts]
    for _ in range(steps - 1):
        tokens = runner.decode(tokens, positions).float().argmax(-1).tolist()
        positions = [p + 1 for p in positions]
        for row, token in zip(out, tokens, strict=True):
            row.append(token)
    return out
