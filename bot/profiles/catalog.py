"""The merchant's catalog as vectors: what a message is about, and what to recommend."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.storage.store import Store
from lm_service.api import LMClient

# A message whose best product similarity is below this is chatter: it moves the interest
# vector but not the category/tag affinities. MiniLM puts unrelated lines around 0.0-0.2.
ON_TOPIC = 0.3
# Categories/tags within this much of the best match get a partial signal.
SPREAD = 0.12
# How long a loaded catalog is trusted before the sku set and version are checked again.
RECHECK_S = 30.0
_EMBED_BATCH = 64
_BLOCK = 1 << 19  # multiply-adds per matrix product in `signals_many` (see there)


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    description: str
    category: str
    tags: tuple[str, ...]
    url: str | None
    in_stock: bool
    price: str = ""
    currency: str = ""

    @classmethod
    def from_hash(cls, sku: str, data: Mapping[Any, Any]) -> Product:
        tags = tuple(t.strip().lower() for t in _tags(str(data.get("tags") or "")) if t.strip())
        stock = str(data.get("in_stock", "true")).strip().lower()
        return cls(sku=sku, name=data.get("name") or sku, description=data.get("description", ""),
                   category=(data.get("category") or "").strip().lower(), tags=tags,
                   url=data.get("url") or None, in_stock=stock not in ("false", "0", "no", ""),
                   price=data.get("price", ""), currency=data.get("currency", ""))

    def embed_text(self) -> str:
        return f"{self.name}. {self.category}. {', '.join(self.tags)}. {self.description}"


def _tags(raw: str) -> list[str]:
    """The knowledge import stores a JSON list; a hand-written hash may use `a|b` like the CSV."""
    if raw.startswith("["):
        try:
            return [str(t) for t in json.loads(raw)]
        except ValueError:
            pass
    return re.split(r"[|,]", raw)


@dataclass
class CatalogVectors:
    products: list[Product]
    matrix: np.ndarray  # one unit row per product
    skus: frozenset[str]
    loaded_at: float
    version: str = ""  # the knowledge import's counter, bumped on every catalog change

    # The label columns of `signals_many`: which category/tag each product votes for.
    _labels: list[str] | None = field(default=None, init=False, repr=False, compare=False)
    _votes: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _columns: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def signals(self, embedding: np.ndarray) -> dict[str, float]:
        """How strongly one message is about each category (`c:`) and tag (`t:`), 0..1."""
        return self.signals_many(np.asarray(embedding, dtype=np.float32)[None, :])[0]

    def signals_many(self, embeddings: np.ndarray) -> list[dict[str, float]]:
        """`signals` of every row, as matrix products: a batch of 64 costs about what two
        single messages cost one product at a time.

        Each close product votes with its closeness; a category or tag scores the share of
        the votes it got, so "tent" gives tents 1.0 but the best tent's "6-person" less.
        """
        rows = len(embeddings)
        if not self.products or not rows:
            return [{} for _ in range(rows)]
        labels, incidence = self._label_matrix()
        sims = self._similarities(embeddings)
        best = sims.max(axis=1, keepdims=True)
        weights = np.maximum(sims - (best - SPREAD), 0.0) / SPREAD  # 0 at or below the floor
        votes = weights @ incidence
        share = np.minimum(1.0, votes / weights.sum(axis=1, keepdims=True))
        share[best[:, 0] < ON_TOPIC] = 0.0  # chatter: no signal at all
        out: list[dict[str, float]] = [{} for _ in range(rows)]
        hit_rows, hit_cols = np.nonzero(votes * (share > 0))
        for row, col, value in zip(hit_rows.tolist(), hit_cols.tolist(),
                                   share[hit_rows, hit_cols].tolist(), strict=True):
            out[row][labels[col]] = value
        return out

    def _similarities(self, embeddings: np.ndarray) -> np.ndarray:
        # Row blocks under ~0.5M multiply-adds: above that OpenBLAS wakes its thread pool,
        # which on 2 cores busy with the embedder costs milliseconds instead of microseconds.
        if self._columns is None:
            self._columns = np.ascontiguousarray(self.matrix.T, dtype=np.float32)
        step = max(1, _BLOCK // max(1, self._columns.size))
        rows = np.asarray(embeddings, dtype=np.float32)
        return np.concatenate([rows[i:i + step] @ self._columns
                               for i in range(0, len(rows), step)]).astype(np.float64)

    def _label_matrix(self) -> tuple[list[str], np.ndarray]:
        if self._labels is None or self._votes is None:
            index: dict[str, int] = {}
            pairs = [(p, index.setdefault(name, len(index)))
                     for p, product in enumerate(self.products)
                     for name in (f"c:{product.category}", *(f"t:{t}" for t in product.tags))
                     if name != "c:"]
            votes = np.zeros((len(self.products), len(index)))
            for p, column in pairs:
                votes[p, column] += 1  # a tag listed twice votes twice, as it always did
            self._labels, self._votes = list(index), votes
        return self._labels, self._votes

    def closest(self, embedding: np.ndarray, threshold: float) -> Product | None:
        if not self.products:
            return None
        sims = self.matrix @ embedding
        index = int(sims.argmax())
        return self.products[index] if float(sims[index]) >= threshold else None

    def names(self) -> set[str]:
        """Every category and tag, for validating segment expressions."""
        return {p.category for p in self.products} | {t for p in self.products for t in p.tags}


class CatalogCache:
    """Product vectors per merchant, embedded once and re-embedded when the sku set changes."""

    def __init__(self, store: Store, lm: LMClient) -> None:
        self.store = store
        self.lm = lm
        self._cache: dict[str, CatalogVectors] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, merchant: str) -> CatalogVectors:
        cached = self._cache.get(merchant)
        now = time.monotonic()
        if cached is not None and now - cached.loaded_at < RECHECK_S:
            return cached
        lock = self._locks.setdefault(merchant, asyncio.Lock())
        async with lock:
            keys = self.store.keys(merchant)
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.smembers(keys.product_skus())
            pipe.get(keys.knowledge_version())
            members, version = await pipe.execute()
            skus = frozenset(str(s) for s in members)
            cached = self._cache.get(merchant)
            if cached is not None and cached.skus == skus and cached.version == str(version):
                cached.loaded_at = now
                return cached
            vectors = await self._load(merchant, skus, str(version))
            self._cache[merchant] = vectors
            return vectors

    def invalidate(self, merchant: str) -> None:
        self._cache.pop(merchant, None)

    async def products(self, merchant: str) -> dict[str, Product]:
        """Fresh product records (stock changes without the sku set changing)."""
        keys = self.store.keys(merchant)
        skus = sorted(str(s) for s in await self.store.redis.smembers(keys.product_skus()))
        pipe = self.store.redis.pipeline(transaction=False)
        for sku in skus:
            pipe.hgetall(keys.product(sku))
        rows = await pipe.execute()
        return {sku: Product.from_hash(sku, row) for sku, row in zip(skus, rows, strict=True)
                if row}

    async def _load(self, merchant: str, skus: frozenset[str], version: str) -> CatalogVectors:
        products = list((await self.products(merchant)).values())
        texts = [p.embed_text() for p in products]
        rows: list[list[float]] = []
        for start in range(0, len(texts), _EMBED_BATCH):
            rows.extend(await self.lm.embed(texts[start:start + _EMBED_BATCH]))
        matrix = (np.asarray(rows, dtype=np.float32) if rows
                  else np.zeros((0, 1), dtype=np.float32))
        return CatalogVectors(products, matrix, skus, time.monotonic(), version)
