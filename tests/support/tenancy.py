"""Approving communities in tests: the shop's own groups and servers serve it only once
approved, as in production (a stranger's stay unapproved)."""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.tenancy import Communities


async def approve(redis: aioredis.Redis, *community_keys: str, merchant: str = "default") -> None:
    """Approve each community (`telegram:-100123`, `discord:456`) for `merchant`."""
    communities = Communities(redis)
    for key in community_keys:
        await communities.approve(merchant, key, "test", "tests")


async def snapshot(redis: aioredis.Redis, pattern: str = "sk:default:*") -> dict[str, object]:
    """Every key matching `pattern` with its value, to show that nothing of a merchant
    changed (compare two snapshots)."""
    out: dict[str, object] = {}
    async for key in redis.scan_iter(match=pattern, count=1000):
        kind = await redis.type(key)
        value: object
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        else:
            value = await redis.xrange(key) if kind == "stream" else kind
        out[str(key)] = value
    return out
