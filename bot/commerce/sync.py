"""The live catalog: the store's products replace the stored catalog, on a schedule and on
demand; one process syncs at a time, and a failed or empty fetch changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

from bot.commerce.connector import StoreConnector, StoreError
from bot.errors import UserFacingError
from bot.knowledge.store import ImportReport, KnowledgeStore
from bot.storage.store import CONNECTION_ERRORS, Store

log = logging.getLogger(__name__)

LOCK_TTL_S = 600
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SyncFailed(UserFacingError):
    """A sync that changed nothing; the message says why, fit for a moderator."""


@dataclass(frozen=True)
class SyncResult:
    report: ImportReport
    fetched: int
    seconds: float

    def summary(self, kind: str) -> str:
        return self.report.summary(f"Catalog from {kind} ({self.fetched} products, "
                                   f"{self.seconds:.1f} s)")


class CatalogSync:
    """Fetches every product through the connector and imports them with `replace`: new
    ones added, changed ones updated (re-embedded only when their text changed), and those
    the store no longer lists removed from answers and recommendations."""

    def __init__(self, store: Store, knowledge: KnowledgeStore, connector: StoreConnector,
                 merchant: str, interval_s: float) -> None:
        self.store = store
        self.knowledge = knowledge
        self.connector = connector
        self.merchant = merchant
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> SyncResult:
        """One sync now.

        Raises:
            SyncFailed: another sync is running, the store failed, or it listed no products.
        """
        keys = self.store.keys(self.merchant)
        token = uuid.uuid4().hex
        if not await self.store.redis.set(keys.catalog_sync_lock(), token, nx=True,
                                          ex=LOCK_TTL_S):
            raise SyncFailed("A catalog sync is already running; try again in a minute.")
        started = time.monotonic()
        try:
            try:
                products = await self.connector.products()
            except StoreError as exc:
                await self._record(error=type(exc).__name__)
                log.warning("catalog sync from %s failed: %s", self.connector.kind, exc)
                raise SyncFailed(f"I couldn't read the products from {self.connector.kind} "
                                 "(the store did not answer or refused the key); the catalog "
                                 "is unchanged.") from None
            if not products and await self.store.redis.scard(keys.product_skus()):
                # A store that suddenly lists nothing is far likelier misconfigured (a key
                # for another site, everything drafted by mistake) than emptied on purpose.
                await self._record(error="empty")
                raise SyncFailed(f"{self.connector.kind} listed no published products, so "
                                 "I kept the current catalog. Remove products one by one in "
                                 "the store if that is really meant.")
            report = await self.knowledge.import_catalog(self.merchant, products,
                                                         replace=True)
        finally:
            await self.store.redis.eval(_RELEASE, 1, keys.catalog_sync_lock(), token)
        result = SyncResult(report, len(products), time.monotonic() - started)
        await self._record(added=report.added, updated=report.updated,
                           removed=report.removed, products=len(products))
        log.info("%s", result.summary(self.connector.kind))
        return result

    async def last_run(self) -> dict[str, str]:
        raw = await self.store.redis.hgetall(self.store.keys(self.merchant).catalog_sync())
        return {str(k): str(v) for k, v in dict(raw).items()}

    async def _record(self, error: str | None = None, **counts: int) -> None:
        """A success replaces the record (`at` drives the schedule); a failure only adds
        `failed_at` and `error`, so the next try comes soon rather than an interval later."""
        key = self.store.keys(self.merchant).catalog_sync()
        now = f"{time.time():.0f}"
        if error is not None:
            await self.store.redis.hset(key, mapping={"failed_at": now, "error": error})
            return
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"at": now, **{k: str(v) for k, v in counts.items()}})
            await pipe.execute()

    # The schedule
    async def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="catalog-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                last = float((await self.last_run()).get("at") or 0)
                due = last + self.interval_s - time.time()
                if due > 0:  # a restart does not sync again before the interval is up
                    await asyncio.sleep(due)
                    continue
                await self.run()
            except asyncio.CancelledError:
                raise
            except SyncFailed as exc:
                log.warning("scheduled catalog sync: %s", exc.message)
                await asyncio.sleep(min(self.interval_s, 300))
            except CONNECTION_ERRORS:
                log.warning("scheduled catalog sync: storage unreachable")
                await asyncio.sleep(min(self.interval_s, 60))
            except Exception:
                log.exception("scheduled catalog sync failed")
                await asyncio.sleep(min(self.interval_s, 300))
