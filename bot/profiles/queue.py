"""The ingestion queue: bounded in memory, spilling to a per-merchant Redis stream when full.

Two stages run in the background: an embedder that takes batches (memory first, then the
spill streams) and asks the LM for their vectors, and one writer that folds them into
profiles. One writer means no two updates of one profile ever race inside a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from bot.storage.keys import merchants
from bot.storage.store import CONNECTION_ERRORS, Store

log = logging.getLogger(__name__)

GROUP = "profiles"
_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
_STOP_RETRY_S = 2.0


@dataclass(frozen=True)
class IngestItem:
    merchant: str
    member: str
    platform: str
    text: str
    ts: float
    community: str | None = None
    stream_id: str | None = None  # set when the item came from a spill stream

    def fields(self) -> dict[Any, Any]:
        return {"m": self.member, "p": self.platform, "t": self.text, "ts": repr(self.ts),
                "c": self.community or ""}

    @classmethod
    def from_fields(cls, merchant: str, stream_id: str, data: dict[str, str]) -> IngestItem:
        return cls(merchant, data["m"], data.get("p", ""), data.get("t", ""),
                   float(data.get("ts") or time.time()), data.get("c") or None, stream_id)


Embedder = Callable[[list[str]], Awaitable[list[list[float]]]]
Writer = Callable[[list[IngestItem], list[list[float]]], Awaitable[None]]
Filter = Callable[[list[IngestItem]], Awaitable[list[IngestItem]]]


class IngestQueue:
    """`await submit(item)` never waits on the model: it queues or spills to Redis."""

    def __init__(self, store: Store, embed: Embedder, write: Writer, *, maxsize: int = 5000,
                 batch: int = 64, keep: Filter | None = None) -> None:
        self.store = store
        self._embed = embed
        self._write = write
        self._keep = keep  # drops what must not be embedded at all (opted-out members)
        self.batch = batch
        self._memory: asyncio.Queue[IngestItem] = asyncio.Queue(maxsize=maxsize)
        self._handoff: asyncio.Queue[tuple[list[IngestItem], list[list[float]]]] = (
            asyncio.Queue(maxsize=1))
        self._spilled: set[str] = set()  # merchants whose stream may hold items
        self._consumer = f"c-{uuid.uuid4().hex[:10]}"
        self._in_flight = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.spilled_total = 0
        self.processed_total = 0

    async def start(self) -> None:
        for merchant in await self.store.redis.smembers(merchants()):
            if await self.store.redis.exists(self.store.keys(str(merchant)).profile_ingest()):
                self._spilled.add(str(merchant))
        self._tasks = [asyncio.create_task(self._embed_loop(), name="profiles-embed"),
                       asyncio.create_task(self._write_loop(), name="profiles-write")]

    async def stop(self) -> None:
        """Stop the stages; whatever is still in memory goes to the spill streams, not lost."""
        pending = set(self._tasks)
        while pending:
            # Cancelled again until they end: on Python 3.11 `asyncio.wait_for` swallows a
            # cancellation that arrives as its result does (the embedder's reply), and the
            # stage then waits for ever to hand its batch to a writer that is gone.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=_STOP_RETRY_S)
        self._tasks = []
        left: list[IngestItem] = []
        while not self._handoff.empty():
            left.extend(i for i in self._handoff.get_nowait()[0] if i.stream_id is None)
        while not self._memory.empty():
            left.append(self._memory.get_nowait())
        if left:
            await self._spill(left)
            log.info("profiles: %d queued messages kept in Redis for the next start", len(left))

    async def submit(self, item: IngestItem) -> None:
        try:
            self._memory.put_nowait(item)
        except asyncio.QueueFull:
            await self._spill([item])

    @property
    def pending(self) -> int:
        return self._memory.qsize() + self._handoff.qsize() + self._in_flight

    async def flush(self, within_s: float = 120.0) -> None:
        """Wait until every queued and spilled message has been written (tests, import)."""
        deadline = time.monotonic() + within_s
        while True:
            if self.pending == 0 and not await self._spill_backlog():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"profiles: {self.pending} messages still queued")
            await asyncio.sleep(0.02)

    async def _spill_backlog(self) -> int:
        total = 0
        for merchant in list(self._spilled):
            total += int(await self.store.redis.xlen(self.store.keys(merchant).profile_ingest()))
        return total

    async def _spill(self, items: list[IngestItem]) -> None:
        pipe = self.store.redis.pipeline(transaction=False)
        for item in items:
            pipe.xadd(self.store.keys(item.merchant).profile_ingest(), item.fields())
        await pipe.execute()
        # Marked (and counted in `spilled_total`) once the entries exist, so that a reader
        # who just found the stream empty does not unmark it after these landed.
        self._spilled.update(item.merchant for item in items)
        self.spilled_total += len(items)

    async def _next_batch(self) -> list[IngestItem]:
        items: list[IngestItem] = []
        if self._memory.empty() and not self._spilled:
            # Bounded, so that a spill marked meanwhile is read within a second.
            try:  # asyncio.timeout, not wait_for (see `stop`)
                async with asyncio.timeout(1.0):
                    items.append(await self._memory.get())
            except TimeoutError:
                return items
        while len(items) < self.batch and not self._memory.empty():
            items.append(self._memory.get_nowait())
        if len(items) < self.batch and self._spilled:
            items.extend(await self._read_spill(self.batch - len(items)))
        if not items:
            try:
                async with asyncio.timeout(0.2):
                    items.append(await self._memory.get())
            except TimeoutError:
                pass
        return items

    async def _read_spill(self, count: int) -> list[IngestItem]:
        redis = self.store.redis
        out: list[IngestItem] = []
        spilled = self.spilled_total  # moves when a spill lands while we look
        for merchant in sorted(self._spilled):
            stream = self.store.keys(merchant).profile_ingest()
            try:
                await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except Exception as exc:  # BUSYGROUP: it exists already
                if "BUSYGROUP" not in str(exc):
                    raise
            # Our own unacknowledged entries first (a failed batch), then new ones; entries a
            # dead process left behind are claimed after a minute.
            # XAUTOCLAIM answers 2 elements before Redis 7 and 3 from 7 on; [1] is the entries.
            claimed: Any = await redis.xautoclaim(stream, GROUP, self._consumer,
                                                  min_idle_time=60_000, count=count)
            rows: list[Any] = list(claimed[1])
            if len(rows) < count:
                got: Any = await redis.xreadgroup(GROUP, self._consumer, {stream: ">"},
                                                  count=count - len(rows))
                groups = got.items() if isinstance(got, dict) else (got or [])
                for _, entries in groups:
                    rows.extend(entries)
            if not rows and not await redis.xlen(stream) and self.spilled_total == spilled:
                self._spilled.discard(merchant)  # empty, and nothing spilled since we looked
            out.extend(IngestItem.from_fields(merchant, sid, data) for sid, data in rows
                       if data)
            count -= len(rows)
            if count <= 0:
                break
        return out

    async def _embed_loop(self) -> None:
        while True:
            try:
                items = await self._next_batch()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis unreachable while reading the spill: wait, go on
                log.exception("profiles: could not read queued messages")
                await asyncio.sleep(1.0)
                continue
            if not items:
                continue
            self._in_flight += len(items)
            try:
                await self._embed_batch(items)
            except asyncio.CancelledError:
                # Stopping: what this stage holds goes back to Redis (spill entries are
                # still unacknowledged there and are claimed again on the next start).
                await self._spill([i for i in items if i.stream_id is None])
                raise
            except Exception:
                # The model (or Redis) keeps failing: park the messages rather than drop them.
                log.exception("profiles: embedding failed; %d messages parked", len(items))
                with contextlib.suppress(Exception):
                    await self._spill([i for i in items if i.stream_id is None])
            finally:
                self._in_flight -= len(items)

    async def _embed_batch(self, items: list[IngestItem]) -> None:
        if self._keep is not None:
            kept = cast(list[IngestItem], await self._retry("filter", self._keep, items))
            dropped = [i for i in items if i not in kept]
            if dropped:
                await self._ack([i for i in dropped if i.stream_id])
                items = kept
        if not items:
            return
        vectors = cast(list[list[float]],
                       await self._retry("embed", self._embed, [i.text for i in items]))
        await self._handoff.put((items, vectors))

    async def _write_loop(self) -> None:
        while True:
            items, vectors = await self._handoff.get()
            self._in_flight += len(items)
            try:
                await self._write_until_redis_answers(items, vectors)
                self.processed_total += len(items)
            except asyncio.CancelledError:
                await self._spill([i for i in items if i.stream_id is None])
                raise
            except Exception:
                log.exception("profiles: could not write %d messages; parking them", len(items))
                with contextlib.suppress(Exception):
                    await self._spill([i for i in items if i.stream_id is None])
            finally:
                self._in_flight -= len(items)

    async def _write_until_redis_answers(self, items: list[IngestItem],
                                         vectors: list[list[float]]) -> None:
        """While Redis is unreachable there is nowhere to park the batch either: hold it and
        keep trying (the memory queue keeps taking messages, bounded)."""
        while True:
            try:
                await self._retry("write", self._write, items, vectors)
                await self._ack([i for i in items if i.stream_id is not None])
                return
            except CONNECTION_ERRORS:
                log.warning("profiles: Redis unreachable; holding %d messages", len(items))
                await asyncio.sleep(_RETRY_DELAYS[-1])

    async def _ack(self, items: list[IngestItem]) -> None:
        if not items:
            return
        pipe = self.store.redis.pipeline(transaction=False)
        for item in items:
            stream = self.store.keys(item.merchant).profile_ingest()
            assert item.stream_id is not None
            pipe.xack(stream, GROUP, item.stream_id)
            pipe.xdel(stream, item.stream_id)
        await pipe.execute()

    @staticmethod
    async def _retry(what: str, fn: Callable[..., Awaitable[object]], *args: object) -> object:
        for delay in (*_RETRY_DELAYS, None):
            try:
                return await fn(*args)
            except asyncio.CancelledError:
                raise
            except Exception:
                if delay is None:
                    raise
                log.warning("profiles: %s failed, retrying in %.1fs", what, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
