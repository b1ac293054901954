"""The fast Llama runner against transformers' own model, and the row-by-row fallback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from lm_service import models
from lm_service.fallback import RowByRow
from lm_service.llama import FastLlama
from lm_service.local import InProcessLMClient
from tests.lm_service.decoding import chat_prompt, greedy


@pytest.fixture(scope="module")
def hf_model(lm_client: InProcessLMClient) -> Iterator[tuple[Any, Any, Any]]:
    """transformers' LlamaForCausalLM from the engine's converted folder (bfloat16)."""
    from transformers import AutoModelForCausalLM

    engine = lm_client.engine
    folder = models.model_folder(models.default_lm_path(), torch.bfloat16,
                                 engine.config.cache_dir)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16,
                                                 local_files_only=True).eval()
    yield model, engine.tokenizer, folder
    del model


def test_built_from_the_model_or_the_folder_alike(hf_model: tuple[Any, Any, Any]) -> None:
    model, tokenizer, folder = hf_model
    from_folder = FastLlama.from_folder(folder, torch.bfloat16, "cpu")
    from_model = FastLlama.from_model(model)
    assert from_folder is not None and FastLlama.supports(model)
    prompt = chat_prompt(tokenizer, "Which tent is best for rain?")
    assert torch.equal(from_folder.prefill(0, [prompt]), from_model.prefill(0, [prompt]))


def test_fast_path_follows_transformers(hf_model: tuple[Any, Any, Any]) -> None:
    """Fused weights, folded norms and the slot cache compute the same model: the greedy
    answer agrees with transformers' own generate for a while (bf16 rounding differs)."""
    model, tokenizer, folder = hf_model
    runner = FastLlama.from_folder(folder, torch.bfloat16, "cpu")
    prompt = chat_prompt(tokenizer, "What is a tent?")
    ours = greedy(runner, [prompt], 8)[0]
    with torch.inference_mode():
        theirs = model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)
    assert ours[:4] == theirs[0, len(prompt):len(prompt) + 4].tolist()


def test_row_by_row_fallback_matches_transformers(hf_model: tuple[Any, Any, Any]) -> None:
    model, tokenizer, _ = hf_model
    runner = RowByRow(model)
    prompts = [chat_prompt(tokenizer, "hi"), chat_prompt(tokenizer, "Name a warm sleeping bag.")]
    ours = greedy(runner, prompts, 6)
    with torch.inference_mode():
        for prompt, row in zip(prompts, ours, strict=True):
            theirs = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False,
                                    min_new_tokens=6)
            assert row == theirs[0, len(prompt):].tolist()
