"""A per-run Redis lock: a short lease (`SET NX` with an expiry) renewed while its owner works,
released or renewed only by that owner (Lua compare-and-delete / compare-and-extend)."""

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

    async def remaining_s(self) -> float:
        """Seconds until the lease runs out (0 when nobody holds it)."""
        return max(0, int(await self.redis.pttl(self.key))) / 1000

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        return str(value) if value is not None else None

    @contextlib.asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[RunLock]:
        """Renew the lease every third of its length while the body runs (a long fan-out):
        two renewals may fail (Redis away for a moment) before another process could take
        over. `lost` turns True when the lease was no longer ours."""
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
