"""The merchant's FAQ and catalog in Redis, with their embeddings, written all or nothing."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.knowledge.models import FaqEntry, Product
from bot.storage.keys import Keys, merchants
from bot.storage.store import Store
from lm_service.api import LMClient

Record = FaqEntry | Product
EMBED_BATCH = 64
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ImportReport:
    added: int
    updated: int
    unchanged: int
    removed: int
    embedded: int

    def summary(self, what: str) -> str:
        return (f"{what}: {self.added} added, {self.updated} updated, {self.unchanged} "
                f"unchanged, {self.removed} removed.")


def embed_texts(record: Record) -> list[str]:
    """The texts whose vectors stand for a record: every phrasing of a question, the answer;
    a product's name (with its category) and its description."""
    if isinstance(record, FaqEntry):
        return [record.question, *record.alternates, record.answer]
    return [f"{record.name} ({record.category})", f"{record.name}. {record.description}"]


def vector_field(kind: str, record_id: str) -> str:
    return f"{kind}:{record_id}"


def phrasings_field(kind: str, record_id: str) -> str:
    """Field of the vectors hash with an FAQ entry's LM-written phrasings (paraphrase.py)."""
    return "para:" + vector_field(kind, record_id)


def _signature(texts: list[str]) -> str:
    return hashlib.sha1(json.dumps(texts).encode()).hexdigest()[:16]


def encode_vectors(texts: list[str], vectors: Sequence[Sequence[float]]) -> str:
    matrix = np.asarray(vectors, dtype=np.float32)
    return json.dumps({"sig": _signature(texts), "shape": list(matrix.shape),
                       "data": base64.b64encode(matrix.tobytes()).decode()})


def decode_vectors(raw: str) -> tuple[str, np.ndarray]:
    data = json.loads(raw)
    matrix = np.frombuffer(base64.b64decode(data["data"]), dtype=np.float32)
    return str(data["sig"]), matrix.reshape(data["shape"])


class KnowledgeStore:
    """Reads and writes FAQ entries and products for any merchant."""

    def __init__(self, store: Store, lm: LMClient) -> None:
        self.store = store
        self.lm = lm

    # Reading
    async def faq_entries(self, merchant: str) -> list[FaqEntry]:
        keys = self.store.keys(merchant)
        ids = sorted(str(i) for i in await self.store.redis.smembers(keys.faq_ids()))
        return [e for e in [await self.faq(merchant, i) for i in ids] if e is not None]

    async def faq(self, merchant: str, entry_id: str) -> FaqEntry | None:
        data = _strs(await self.store.redis.hgetall(self.store.keys(merchant).faq(entry_id)))
        if not data:
            return None
        return FaqEntry(data["id"], data["question"], data["answer"],
                        tuple(json.loads(data.get("alternates", "[]"))),
                        tuple(json.loads(data.get("tags", "[]"))), data.get("url") or None)

    async def products(self, merchant: str) -> list[Product]:
        keys = self.store.keys(merchant)
        skus = sorted(str(s) for s in await self.store.redis.smembers(keys.product_skus()))
        return [p for p in [await self.product(merchant, s) for s in skus] if p is not None]

    async def product(self, merchant: str, sku: str) -> Product | None:
        data = _strs(await self.store.redis.hgetall(self.store.keys(merchant).product(sku)))
        if not data:
            return None
        return Product(data["sku"], data["name"], data["description"], float(data["price"]),
                       data["currency"], data["category"], tuple(json.loads(data["tags"])),
                       data.get("url") or None, data.get("image_url") or None,
                       data.get("in_stock") == "1")

    async def vectors(self, merchant: str) -> dict[str, np.ndarray]:
        raw = await self.store.redis.hgetall(self.store.keys(merchant).vectors())
        return {str(k): decode_vectors(str(v))[1] for k, v in raw.items()}

    async def version(self, merchant: str) -> int:
        value = await self.store.redis.get(self.store.keys(merchant).knowledge_version())
        return int(value or 0)

    # Writing
    async def import_faq(self, merchant: str, entries: Sequence[FaqEntry], replace: bool = False,
                         progress: Progress | None = None) -> ImportReport:
        return await self._import(merchant, "faq", list(entries), replace, progress)

    async def import_catalog(self, merchant: str, products: Sequence[Product],
                             replace: bool = False,
                             progress: Progress | None = None) -> ImportReport:
        return await self._import(merchant, "product", list(products), replace, progress)

    async def remove_faq(self, merchant: str, entry_id: str) -> bool:
        keys = self.store.keys(merchant)
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.faq_ids(), entry_id)
            pipe.delete(keys.faq(entry_id))
            pipe.hdel(keys.vectors(), vector_field("faq", entry_id),
                      phrasings_field("faq", entry_id))
            pipe.incr(keys.knowledge_version())
            removed, *_ = await pipe.execute()
        return bool(removed)

    async def _import(self, merchant: str, kind: str, records: list[Any], replace: bool,
                      progress: Progress | None) -> ImportReport:
        """Embed what changed, then write every record in one MULTI/EXEC: a failure before
        EXEC (the model, the connection) leaves the stored knowledge exactly as it was."""
        keys = self.store.keys(merchant)
        ids_key = keys.faq_ids() if kind == "faq" else keys.product_skus()
        existing = {str(i) for i in await self.store.redis.smembers(ids_key)}
        stored_vectors = await self.store.redis.hmget(
            keys.vectors(), [vector_field(kind, r.id) for r in records]
        ) if records else []
        old_records = {r.id: await self._read(merchant, kind, r.id) for r in records
                       if r.id in existing}
        todo: list[tuple[Any, list[str]]] = []
        for record, raw in zip(records, stored_vectors, strict=True):
            texts = embed_texts(record)
            if raw is None or decode_vectors(str(raw))[0] != _signature(texts):
                todo.append((record, texts))
        encoded = await self._embed(todo, progress)
        added = updated = unchanged = 0
        async with self.store.redis.pipeline(transaction=True) as pipe:
            for record in records:
                key = _record_key(keys, kind, record.id)
                if record.id not in existing:
                    added += 1
                elif old_records.get(record.id) != record:
                    updated += 1
                else:
                    unchanged += 1
                    continue
                old = old_records.get(record.id)
                if kind == "faq" and (old is None or (old.question, old.answer)  # type: ignore[union-attr]
                                      != (record.question, record.answer)):
                    # written from the old text: gone now, rewritten in the background
                    pipe.hdel(keys.vectors(), phrasings_field(kind, record.id))
                pipe.delete(key)
                pipe.hset(key, mapping=_to_hash(record))
                pipe.sadd(ids_key, record.id)
            if encoded:
                pipe.hset(keys.vectors(), mapping=encoded)
            gone = existing - {r.id for r in records} if replace else set()
            for record_id in gone:
                pipe.delete(_record_key(keys, kind, record_id))
                pipe.srem(ids_key, record_id)
                pipe.hdel(keys.vectors(), vector_field(kind, record_id),
                          phrasings_field(kind, record_id))
            pipe.sadd(merchants(), merchant)  # background work (phrasings) finds it there
            pipe.incr(keys.knowledge_version())
            await pipe.execute()
        return ImportReport(added, updated, unchanged, len(gone), len(encoded))

    async def _read(self, merchant: str, kind: str, record_id: str) -> Record | None:
        if kind == "faq":
            return await self.faq(merchant, record_id)
        return await self.product(merchant, record_id)

    async def _embed(self, todo: list[tuple[Any, list[str]]],
                     progress: Progress | None) -> dict[Any, Any]:
        flat = [text for _, texts in todo for text in texts]
        vectors: list[list[float]] = []
        for start in range(0, len(flat), EMBED_BATCH):
            vectors.extend(await self.lm.embed(flat[start:start + EMBED_BATCH]))
            if progress is not None:
                progress(len(flat[start:start + EMBED_BATCH]))
        out: dict[Any, Any] = {}
        cursor = 0
        for record, texts in todo:
            kind = "faq" if isinstance(record, FaqEntry) else "product"
            out[vector_field(kind, record.id)] = encode_vectors(
                texts, vectors[cursor:cursor + len(texts)])
            cursor += len(texts)
        return out


def texts_to_embed(records: Sequence[Record]) -> int:
    """How many texts an import of these records embeds at most (for a progress bar)."""
    return sum(len(embed_texts(r)) for r in records)


def _record_key(keys: Keys, kind: str, record_id: str) -> str:
    return keys.faq(record_id) if kind == "faq" else keys.product(record_id)


def _strs(data: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(data).items()}


def _to_hash(record: Record) -> dict[Any, Any]:
    data = record.as_record()
    out: dict[Any, Any] = {}
    for name, value in data.items():
        if isinstance(value, list):
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "1" if value else "0"
        elif value is None:
            out[name] = ""
        else:
            out[name] = str(value)
    return out
