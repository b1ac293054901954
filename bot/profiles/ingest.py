"""Folds batches of embedded messages into profiles: one pipelined read, one pipelined write."""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np

from bot.profiles.catalog import CatalogCache, CatalogVectors
from bot.profiles.model import Profile, decode_vectors, encode_vectors, mix_vectors
from bot.profiles.queue import IngestItem
from bot.profiles.rows import NewRow, ProfileRows
from bot.storage.keys import Keys
from bot.storage.store import Store

# "I bought / ordered / picked up ..." — what a member says they own is not recommended again.
_PURCHASE = re.compile(
    r"\b(?:i|we)(?:'ve| have)?\s+(?:just\s+|already\s+|recently\s+|finally\s+)?"
    r"(?:bought|ordered|purchased|picked up|got myself|own)\b",
    re.IGNORECASE,
)
_PURCHASE_SIMILARITY = 0.45
_REPORTED = 0.5  # a category/tag this strongly in a message is reported to listeners
log = logging.getLogger(__name__)
InterestListener = Callable[[str, list[str], float], Awaitable[None]]
DAY_S = 86_400


class ProfileWriter:
    """The queue's write stage. Also used directly by the history import."""

    def __init__(self, store: Store, catalog: CatalogCache, retention_days: int,
                 summary_every: int) -> None:
        self.store = store
        self.catalog = catalog
        self.retention_s = retention_days * DAY_S
        self.summary_every = summary_every
        # member → when they asked to be forgotten: messages written before that are dropped
        self._forgotten: dict[tuple[str, str], float] = {}
        # `async (merchant, labels, ts)`: features counting interests (growth's analytics)
        self.interest_listeners: list[InterestListener] = []
        self._rows = ProfileRows()

    def forget(self, merchant: str, member: str) -> None:
        now = time.time()
        # Queued messages are minutes old at most; older marks are not needed any more.
        self._forgotten = {k: t for k, t in self._forgotten.items() if now - t < 3_600}
        self._forgotten[(merchant, member)] = now

    async def keep(self, items: list[IngestItem]) -> list[IngestItem]:
        """Drop messages of opted-out members before they are embedded."""
        by_merchant: dict[str, list[str]] = defaultdict(list)
        for merchant, member in sorted({(i.merchant, i.member) for i in items}):
            by_merchant[merchant].append(member)
        pipe = self.store.redis.pipeline(transaction=False)
        for merchant, members in by_merchant.items():
            pipe.smismember(self.store.keys(merchant).opted_out(), members)
        out = {(merchant, member)
               for (merchant, members), flags in zip(by_merchant.items(), await pipe.execute(),
                                                     strict=True)
               for member, flag in zip(members, flags, strict=True) if flag}
        return [i for i in items if (i.merchant, i.member) not in out]

    async def write(self, items: list[IngestItem], vectors: list[list[float]]) -> None:
        """Fold a batch into its profiles: per merchant one read and one write (Lua scripts,
        see `rows.py`), with the vector maths done on whole matrices.

        Several processes writing one profile at the same moment: the last write wins (as it
        always did); inside a process the queue's single writer never races itself.
        """
        if len(vectors) != len(items):
            raise ValueError(f"{len(items)} messages but {len(vectors)} vectors")
        if not items:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or not matrix.shape[1]:
            raise ValueError(f"vectors of shape {matrix.shape}: one row per message expected")
        by_merchant: dict[str, list[tuple[IngestItem, int]]] = defaultdict(list)
        for row, item in enumerate(items):
            forgotten = self._forgotten.get((item.merchant, item.member))
            if forgotten is not None and item.ts <= forgotten:
                continue
            if "\0" in item.member:  # the batch scripts separate fields with NUL
                log.warning("profiles: skipped a message of a member key with a NUL")
                continue
            by_merchant[item.merchant].append((item, row))
        for merchant, rows in by_merchant.items():
            await self._write_merchant(merchant, await self._canonical(merchant, rows), matrix)

    async def _write_merchant(self, merchant: str, rows: list[tuple[IngestItem, int]],
                              matrix: np.ndarray) -> None:
        redis, keys = self.store.redis, self.store.keys(merchant)
        members = sorted({item.member for item, _ in rows})
        stored = await self._rows.read(redis, keys, members)
        live = {m: i for i, (m, row) in enumerate(zip(members, stored, strict=True))
                if not row.opted_out}
        rows = [(item, r) for item, r in rows if item.member in live]
        if not rows:
            return
        order = list(live)  # members in the order read
        slot = {m: i for i, m in enumerate(order)}
        profiles = [Profile.from_hash(m, {"aff": stored[live[m]].aff,
                                          "meta": stored[live[m]].meta})
                    for m in order]
        before = [p.last_seen for p in profiles]
        current = self._current_vectors([stored[live[m]].vec for m in order], matrix.shape[1])
        catalog = await self.catalog.get(merchant)
        embeddings = matrix[[r for _, r in rows]]
        signals = catalog.signals_many(embeddings)
        _move_vectors(current, embeddings, [slot[item.member] for item, _ in rows],
                      np.array([p.messages for p in profiles], dtype=np.int64))
        shown: list[tuple[list[str], float]] = []
        for index, (item, _) in enumerate(rows):
            profile = profiles[slot[item.member]]
            profile.messages += 1
            profile.note(item.text, signals[index], item.ts, item.platform, item.community)
            self._purchase(profile, item.text, embeddings[index], catalog)
            if signals[index]:
                shown.append(([n.split(":", 1)[1] for n, v in signals[index].items()
                               if v >= _REPORTED], item.ts))
        touched = sorted(slot[m] for m in {item.member for item, _ in rows})
        await self._save(keys, [profiles[i] for i in touched],
                         encode_vectors(current[touched]), [before[i] for i in touched])
        await self._report(merchant, shown)

    @staticmethod
    def _current_vectors(texts: list[str], width: int) -> np.ndarray:
        """Stored vectors as rows; NaN rows where a profile has none (or another width)."""
        current = np.full((len(texts), width), np.nan, dtype=np.float32)
        for i, vector in enumerate(decode_vectors(list(texts))):
            if vector is not None and vector.shape == (width,):
                current[i] = vector
        return current

    async def _report(self, merchant: str, shown: list[tuple[list[str], float]]) -> None:
        for listener in self.interest_listeners:
            for labels, ts in shown:
                try:
                    await listener(merchant, labels, ts)
                except Exception:  # analytics must never stop profiles
                    log.exception("interest listener failed")
                    break

    async def _canonical(self, merchant: str, rows: list[tuple[IngestItem, int]]
                         ) -> list[tuple[IngestItem, int]]:
        """Linked accounts (growth's /link) share the profile of their canonical member key."""
        accounts = sorted({item.member for item, _ in rows})
        found = await self.store.redis.hmget(self.store.keys(merchant).identity(), accounts)
        person = {a: str(p) for a, p in zip(accounts, found, strict=True) if p}
        if not person:
            return rows
        return [(replace(item, member=person.get(item.member, item.member)), row)
                for item, row in rows]

    @staticmethod
    def _purchase(profile: Profile, text: str, vector: np.ndarray,
                  catalog: CatalogVectors) -> None:
        """"I bought the X": the product is noted so that it is not recommended again."""
        if _PURCHASE.search(text):
            sku = _named_product(text, catalog)
            if sku is None:
                match = catalog.closest(vector, _PURCHASE_SIMILARITY)
                sku = match.sku if match else None
            if sku:
                profile.bought.add(sku)

    async def _save(self, keys: Keys, profiles: list[Profile], vectors: list[str],
                    seen_before: list[float]) -> None:
        """One script call: the hashes, their expiry, the index and the stale-summary set."""
        now = time.time()
        rows: list[NewRow] = []
        for profile, vec, old in zip(profiles, vectors, seen_before, strict=True):
            aff, meta = profile.to_fields()
            # Retention: idle profiles expire by themselves, counted from the last message.
            # HSET keeps a key's expiry, so it is only moved when the day of the last message
            # changes (retention is counted in days): most batches set no expiry at all.
            ttl = 0
            if not old or int(old // DAY_S) != int(profile.last_seen // DAY_S):
                ttl = max(int(profile.last_seen + self.retention_s - now), 60)
            rows.append(NewRow(profile.member, vec, aff, meta, ttl, profile.last_seen,
                               profile.needs_summary(self.summary_every)))
        await self._rows.write(self.store.redis, keys, rows, now)


def _named_product(text: str, catalog: CatalogVectors) -> str | None:
    lowered = text.lower()
    for product in catalog.products:
        if product.name.lower() in lowered:
            return product.sku
    return None


def _move_vectors(current: np.ndarray, embeddings: np.ndarray, slots: list[int],
                  counts: np.ndarray) -> None:
    """Fold message i (`embeddings[i]`) into row `slots[i]` of `current` (NaN rows: no vector
    yet), in place; `counts` are the rows' message counts before the batch. The rows move in
    rounds: a member's second message of the batch mixes into what their first one left, as
    one message at a time would."""
    has = ~np.isnan(current[:, 0])
    counts = counts.copy()
    for batch_round in _rounds(slots):
        at = np.array([slots[i] for i in batch_round])
        counts[at] += 1
        first = np.where(has[at], counts[at], 1)
        current[at] = mix_vectors(np.nan_to_num(current[at]), embeddings[batch_round], first)
        has[at] = True


def _rounds(slots: list[int]) -> list[list[int]]:
    """Message positions grouped so that each group has at most one message per profile and
    a profile's messages stay in order: [a, b, a] → [[0, 1], [2]]."""
    seen: dict[int, int] = {}
    out: list[list[int]] = []
    for position, slot in enumerate(slots):
        n = seen.get(slot, 0)
        seen[slot] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(position)
    return out
