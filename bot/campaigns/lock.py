"""A per-run Redis lock: `SET NX` with an expiry, released only by its owner (Lua)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# Delete / extend only when the value is still ours: a run that outlived its expiry must not
# free (or keep) the lock a second process has since taken.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RunLock:
    def __init__(self, redis: aioredis.Redis, key: str, ttl_s: float,
                 owner: str | None = None) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.owner = owner or uuid.uuid4().hex
        self.lost = False

    async def acquire(self) -> bool:
        """True when this owner now holds the lock."""
        return bool(await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    async def release(self) -> bool:
        """Free the lock if it is still ours; False when it expired or another owner holds it."""
        return bool(await self.redis.eval(_RELEASE, 1, self.key, self.owner))  # type: ignore[misc]

    async def extend(self) -> bool:
        ok = bool(await self.redis.eval(_EXTEND, 1, self.key, self.owner,  # type: ignore[misc]
                                        str(self.ttl_ms)))
        if not ok:
            self.lost = True
        return ok

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        return str(value) if value is not None else None

    @contextlib.asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[RunLock]:
        """Extend the expiry at a third of the TTL while the body runs (a long fan-out)."""
        task = asyncio.create_task(self._heartbeat())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                if not await self.extend():
                    log.warning("lost the run lock %s; another process may take over", self.key)
                    return
            except Exception:
                log.exception("could not extend the run lock %s", self.key)
