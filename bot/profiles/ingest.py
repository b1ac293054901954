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
from bot.profiles.model import Profile
from bot.profiles.queue import IngestItem
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
        redis = self.store.redis
        by_merchant: dict[str, list[tuple[IngestItem, np.ndarray]]] = defaultdict(list)
        for item, raw in zip(items, vectors, strict=True):
            forgotten = self._forgotten.get((item.merchant, item.member))
            if forgotten is not None and item.ts <= forgotten:
                continue
            by_merchant[item.merchant].append((item, np.asarray(raw, dtype=np.float32)))
        for merchant, rows in by_merchant.items():
            keys = self.store.keys(merchant)
            rows = await self._canonical(merchant, rows)
            members = sorted({item.member for item, _ in rows})
            pipe = redis.pipeline(transaction=False)
            pipe.smismember(keys.opted_out(), members)
            for member in members:
                pipe.hgetall(keys.profile(member))
            flags, *stored = await pipe.execute()
            opted_out = {m for m, flag in zip(members, flags, strict=True) if flag}
            profiles = {m: Profile.from_hash(m, data)
                        for m, data in zip(members, stored, strict=True)}
            before = {m: p.last_seen for m, p in profiles.items()}
            catalog = await self.catalog.get(merchant)
            touched: set[str] = set()
            shown: list[tuple[list[str], float]] = []
            for item, vector in rows:
                if item.member in opted_out:
                    continue
                signals = self._fold(profiles[item.member], item, vector, catalog)
                touched.add(item.member)
                if signals:
                    shown.append(([n.split(":", 1)[1] for n, v in signals.items()
                                   if v >= _REPORTED], item.ts))
            await self._save(merchant, [profiles[m] for m in sorted(touched)], before)
            await self._report(merchant, shown)

    async def _report(self, merchant: str, shown: list[tuple[list[str], float]]) -> None:
        for listener in self.interest_listeners:
            for labels, ts in shown:
                try:
                    await listener(merchant, labels, ts)
                except Exception:  # analytics must never stop profiles
                    log.exception("interest listener failed")
                    break

    async def _canonical(self, merchant: str, rows: list[tuple[IngestItem, np.ndarray]]
                         ) -> list[tuple[IngestItem, np.ndarray]]:
        """Linked accounts (growth's /link) share the profile of their canonical member key."""
        accounts = sorted({item.member for item, _ in rows})
        found = await self.store.redis.hmget(self.store.keys(merchant).identity(), accounts)
        person = {a: str(p) for a, p in zip(accounts, found, strict=True) if p}
        if not person:
            return rows
        return [(replace(item, member=person.get(item.member, item.member)), vector)
                for item, vector in rows]

    def _fold(self, profile: Profile, item: IngestItem, vector: np.ndarray,
              catalog: CatalogVectors) -> dict[str, float]:
        signals = catalog.signals(vector)
        profile.add_message(item.text, vector, signals, item.ts, item.platform, item.community)
        if _PURCHASE.search(item.text):
            sku = _named_product(item.text, catalog)
            if sku is None:
                match = catalog.closest(vector, _PURCHASE_SIMILARITY)
                sku = match.sku if match else None
            if sku:
                profile.bought.add(sku)
        return signals

    async def _save(self, merchant: str, profiles: list[Profile],
                    seen_before: dict[str, float]) -> None:
        """One pipeline: the hashes, their expiry, the index and the stale-summary set."""
        if not profiles:
            return
        keys = self.store.keys(merchant)
        now = time.time()
        pipe = self.store.redis.pipeline(transaction=False)
        dirty: dict[str, float] = {}
        for profile in profiles:
            key = keys.profile(profile.member)
            pipe.hset(key, mapping=profile.to_hash())
            # Retention: idle profiles expire by themselves, counted from the last message.
            # HSET keeps a key's expiry, so it is only moved when the day of the last message
            # changes (retention is counted in days): most batches send no EXPIRE at all.
            old = seen_before.get(profile.member, 0.0)
            if not old or int(old // DAY_S) != int(profile.last_seen // DAY_S):
                ttl = int(profile.last_seen + self.retention_s - now)
                pipe.expire(key, max(ttl, 60))
            if profile.needs_summary(self.summary_every):
                dirty[profile.member] = now
        pipe.zadd(keys.profile_index(), {p.member: p.last_seen for p in profiles})
        if dirty:
            pipe.zadd(keys.profile_dirty(), dirty, nx=True)
        await pipe.execute()


def _named_product(text: str, catalog: CatalogVectors) -> str | None:
    lowered = text.lower()
    for product in catalog.products:
        if product.name.lower() in lowered:
            return product.sku
    return None
