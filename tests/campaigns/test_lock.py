"""The per-run lock on a real Redis: one holder, owner-only release, expiry, keep-alive."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot.campaigns.lock import RunLock


async def test_only_one_owner_and_only_the_owner_releases(redis_client: aioredis.Redis) -> None:
    first = RunLock(redis_client, "sk:default:test:lock", ttl_s=30)
    second = RunLock(redis_client, "sk:default:test:lock", ttl_s=30)
    assert await first.acquire()
    assert not await second.acquire()
    assert not await second.release()  # not its lock: must not free it
    assert await first.holder() == first.owner
    assert await first.release()
    assert await redis_client.get("sk:default:test:lock") is None
    assert await second.acquire()


async def test_a_dead_owners_lock_expires(redis_client: aioredis.Redis) -> None:
    dead = RunLock(redis_client, "sk:default:test:lock", ttl_s=0.3)
    assert await dead.acquire()
    later = RunLock(redis_client, "sk:default:test:lock", ttl_s=30)
    assert not await later.acquire()
    await asyncio.sleep(0.4)
    assert await later.acquire()
    assert not await dead.release()  # its expiry passed; the new owner keeps the lock
    assert await later.holder() == later.owner


async def test_keep_alive_extends_past_the_ttl(redis_client: aioredis.Redis) -> None:
    lock = RunLock(redis_client, "sk:default:test:lock", ttl_s=0.3)
    assert await lock.acquire()
    async with lock.kept_alive():
        await asyncio.sleep(0.8)
        assert await lock.holder() == lock.owner
    assert not lock.lost
    assert await lock.release()
