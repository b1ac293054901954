"""`ChatTokenizer` against transformers' tokenizer on the engine's model folder: the same ids,
the same text back, the same special tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from lm_service import models
from lm_service.chat_tokenizer import ChatTokenizer
from lm_service.local import InProcessLMClient

CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "You are the assistant of Trailhead Outfitters."},
     {"role": "user", "content": "Which tent is best for rain?"}],
    [{"role": "system", "content": "Réponds en français, s'il te plaît. 北京 🏕️"},
     {"role": "user", "content": "  leading spaces\nand a second line\t<b>tags</b>"},
     {"role": "assistant", "content": "Bien sûr !"},
     {"role": "user", "content": ""}],
]


@pytest.fixture(scope="module")
def folder(lm_client: InProcessLMClient) -> Path:
    engine = lm_client.engine
    return models.model_folder(models.default_lm_path(), engine.runner.dtype,
                               engine.config.cache_dir)


def test_the_engine_uses_it(lm_client: InProcessLMClient) -> None:
    assert isinstance(lm_client.engine.tokenizer, ChatTokenizer)


def test_same_as_transformers(folder: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    ours = ChatTokenizer(folder)
    theirs = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    assert ours.eos_token_id == theirs.eos_token_id
    assert ours.get_vocab() == theirs.get_vocab()
    assert models.end_token_ids(folder, ours) == models.end_token_ids(folder, theirs)
    for messages in CONVERSATIONS:
        for opened in (True, False):
            expected = theirs.apply_chat_template(messages, add_generation_prompt=opened,
                                                  tokenize=True)
            expected = list(expected["input_ids"] if hasattr(expected, "keys") else expected)
            ids = ours.apply_chat_template(messages, add_generation_prompt=opened)
            assert ids == expected
            assert ours.apply_chat_template(messages, opened, tokenize=False) == (
                theirs.apply_chat_template(messages, add_generation_prompt=opened,
                                           tokenize=False))
            for skip in (True, False):
                assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(
                    ids, skip_special_tokens=skip)
            for end in range(1, len(ids), 7):  # partial answers, as the text tracker sees them
                assert ours.decode(ids[:end], skip_special_tokens=True) == theirs.decode(
                    ids[:end], skip_special_tokens=True)
    text = "Plain text, no template: 20% off tents 🏕️"
    assert ours(text)["input_ids"] == list(theirs(text)["input_ids"])
