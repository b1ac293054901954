"""Sentence embeddings (all-MiniLM-L6-v2 by default): batched, mean-pooled, unit length, cached."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lm_service.api import LMUnavailable


class Embedder:
    """Turns texts into normalised vectors with a sentence-transformers model folder.

    Runs on whatever thread calls it (the engine thread, between decode steps), with the torch
    thread count set by the engine. Keeps the last `cache_size` vectors by text hash.
    """

    def __init__(
        self, path: Path, device: str = "cpu", cache_size: int = 4096, max_length: int | None = None
    ) -> None:
        from lm_service.bert import Bert

        self.device = device
        self.model: Any = None
        self.tokenizer: Any = None
        self._fast: Any = None  # a `tokenizers.Tokenizer` when the model is our own `Bert`
        try:
            bert = Bert.from_folder(path, device) if (path / "tokenizer.json").exists() else None
            if bert is not None:
                from tokenizers import Tokenizer

                self.model, self._fast = bert, Tokenizer.from_file(str(path / "tokenizer.json"))
                self.dimension = bert.hidden
                limit = _configured_limit(path)
            else:
                self._load_transformers(path, device)
                limit = getattr(self.tokenizer, "model_max_length", 512)
        except (OSError, ValueError) as exc:
            raise LMUnavailable(f"cannot load the embedding model at {path}: {exc}") from exc
        self.max_length = max_length or _max_length(path, limit)
        if self._fast is not None:
            pad = self._fast.token_to_id("[PAD]")
            self._fast.enable_padding(pad_id=pad or 0, pad_token="[PAD]" if pad else "<pad>")
            self._fast.enable_truncation(self.max_length)
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, list[float]] = OrderedDict()

    def _load_transformers(self, path: Path, device: str) -> None:
        """Any other sentence-transformers model, through transformers (slower to start)."""
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(
            path, local_files_only=True, dtype=torch.float32
        ).to(device)
        self.model.eval()
        self.dimension = int(self.model.config.hidden_size)

    def embed(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        """One unit vector per text, in order; repeated texts come from the cache."""
        keys = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key in self._cache:
                self._cache.move_to_end(key)
            else:
                missing.setdefault(key, text)
        todo = list(missing.items())
        # Similar lengths together: less padding per batch.
        todo.sort(key=lambda item: len(item[1]))
        fresh: dict[bytes, list[float]] = {}
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            vectors = self._encode([text for _, text in chunk])
            for (key, _), vector in zip(chunk, vectors, strict=True):
                fresh[key] = vector
                self._remember(key, vector)
        return [fresh[key] if key in fresh else self._cache[key] for key in keys]

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> list[list[float]]:
        if self._fast is not None:
            encodings = self._fast.encode_batch(texts)
            ids = torch.tensor([e.ids for e in encodings], device=self.device)
            attention = torch.tensor([e.attention_mask for e in encodings], device=self.device)
            hidden = self.model(ids, attention)
        else:
            batch = self.tokenizer(texts, padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt"
                                   ).to(self.device)
            attention = batch["attention_mask"]
            hidden = self.model(**batch).last_hidden_state
        mask = attention.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1).tolist()  # type: ignore[no-any-return]

    def _remember(self, key: bytes, vector: list[float]) -> None:
        self._cache[key] = vector
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _configured_limit(path: Path) -> Any:
    """`model_max_length` from the tokenizer's config (512 when it says nothing)."""
    config = path / "tokenizer_config.json"
    if config.exists():
        return json.loads(config.read_text()).get("model_max_length", 512)
    return 512


def _max_length(path: Path, limit: Any) -> int:
    config = path / "sentence_bert_config.json"
    if config.exists():
        value = json.loads(config.read_text()).get("max_seq_length")
        if isinstance(value, int):
            return value
    return int(limit) if isinstance(limit, int) and limit < 100_000 else 512
