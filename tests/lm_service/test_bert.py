"""The embedder's own BERT against transformers' model, and the embedder loaded after start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lm_service import models
from lm_service.api import LMUnavailable
from lm_service.embedder import Embedder
from lm_service.local import InProcessLMClient

TEXTS = [
    "How do I return a tent?",
    "hi",
    "Which sleeping bag is warm enough for winter camping with a family of four? " * 30,
    "Ünïcode façade — 北京 🏕️",
    "",
]


def test_own_bert_matches_transformers() -> None:
    """Same token ids (truncation and padding included) and the same vectors to float
    rounding as sentence-transformers' recipe on transformers' BertModel."""
    from transformers import AutoModel, AutoTokenizer

    path = models.default_embed_path()
    embedder = Embedder(path)
    assert embedder._fast is not None and embedder.dimension == 384
    ours = torch.tensor(embedder.embed(TEXTS))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=embedder.max_length,
                      return_tensors="pt")
    assert [e.ids for e in embedder._fast.encode_batch(TEXTS)] == batch["input_ids"].tolist()
    assert batch["input_ids"].shape[1] == embedder.max_length  # the long text was truncated
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    theirs = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
    assert (ours - theirs).abs().max().item() < 1e-5
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)


async def test_embedder_loads_after_the_generator_and_answers(lm: InProcessLMClient) -> None:
    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    client = InProcessLMClient(cache_dir=cache)
    await client.start()
    try:
        assert client.engine.runner is not None  # ready once the generator is
        vectors = await client.embed(TEXTS[:2])  # waits for the embedder if need be
        assert client.engine.embedder is not None
        assert vectors == await lm.embed(TEXTS[:2])
    finally:
        await client.stop()


async def test_a_missing_embedding_model_fails_at_start(tmp_path: Path) -> None:
    client = InProcessLMClient(embed_model=tmp_path / "nothing", generator=False)
    with pytest.raises(LMUnavailable, match="embedding model not found"):
        await client.start()
