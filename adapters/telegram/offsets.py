"""Update bookkeeping in Redis so a restart neither loses nor repeats a Telegram update.

Each update is written to a `pending` hash before Telegram is told it arrived (the next
getUpdates offset confirms it), claimed with `SET NX` before it is handled (two processes, or
a webhook retry, never handle it twice), and marked done afterwards. On start the poller
replays whatever is still pending: updates a crashed process had received but not finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis

from adapters.telegram.stored import stored_form
from bot.storage.keys import telegram as tg_key
from bot.storage.store import CONNECTION_ERRORS

log = logging.getLogger(__name__)
T = TypeVar("T")

DONE_TTL_S = 7 * 24 * 3600  # Telegram keeps unconfirmed updates for 24 h; a week is ample
CLAIM_TTL_S = 600  # a handler that has not finished in 10 minutes is presumed dead


class UpdateLedger:
    def __init__(self, redis: aioredis.Redis, bot_id: str) -> None:
        self.redis = redis
        self.bot_id = bot_id
        self._offset_key = tg_key(bot_id, "offset")
        self._pending_key = tg_key(bot_id, "pending")

    async def offset(self) -> int | None:
        """The getUpdates offset to resume from, or None on the very first start."""
        value = await self.redis.get(self._offset_key)
        return int(value) if value is not None else None

    async def received(self, updates: list[dict[str, Any]], next_offset: int) -> None:
        """Record a fetched batch as pending and the offset that will confirm it, in one
        transaction, before the batch is confirmed to Telegram. Each update is kept in its
        stored form (see `stored_form`): a replay after a crash reads redacted words."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for update in updates:
                pipe.hsetnx(self._pending_key, str(update["update_id"]),
                            json.dumps(stored_form(update), ensure_ascii=False))
            pipe.set(self._offset_key, next_offset)
            await pipe.execute()

    async def pending(self) -> list[dict[str, Any]]:
        """Updates received but not finished, oldest first."""
        raw = await self.redis.hgetall(self._pending_key)
        return [json.loads(raw[k]) for k in sorted(raw, key=int)]

    async def claim(self, update_id: int, owner: str) -> bool:
        """True when this process may handle the update: nobody else has it or finished it."""
        return bool(await self.redis.set(self._update_key(update_id), f"busy:{owner}",
                                         nx=True, ex=CLAIM_TTL_S))

    async def reclaim(self, update_id: int) -> bool:
        """At start-up, free a pending update whose handler died with its process, so it is
        handled again; False (and no longer pending) when it had in fact been finished."""
        key = self._update_key(update_id)
        if await self.redis.get(key) == "done":
            await self.redis.hdel(self._pending_key, str(update_id))
            return False
        await self.redis.delete(key)
        return True

    async def done(self, update_id: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._update_key(update_id), "done", ex=DONE_TTL_S)
            pipe.hdel(self._pending_key, str(update_id))
            await pipe.execute()

    async def release(self, update_id: int) -> None:
        """Give an unfinished update back (shutdown cut it short): it stays pending and the
        next start handles it."""
        await self.redis.delete(self._update_key(update_id))

    def _update_key(self, update_id: int) -> str:
        return tg_key(self.bot_id, f"update:{update_id}")


async def until_redis_answers(call: Callable[[], Awaitable[T]], stopping: asyncio.Event,
                              what: str) -> T:
    """`call()`, retried while Redis is unreachable (a restart, a pool exhausted by a burst):
    a claim or a "done" that failed would drop the update or answer it twice after the next
    start. Gives up, raising, only once the adapter is stopping (the update stays pending and
    the next start handles it)."""
    delay = 0.5
    while True:
        try:
            return await call()
        except CONNECTION_ERRORS:
            if stopping.is_set():
                raise
            log.warning("Redis unreachable while %s; retrying in %.1f s", what, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, 10.0)
