"""/forgetme for growth records: the member's key is replaced by a pseudonym in shared records,
so referral counts and active-member figures still add up without naming them."""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis

from bot.storage.keys import Keys


async def forget_member(redis: aioredis.Redis, merchant: str, member_key: str,
                        pseudonym: str) -> None:
    keys = Keys(merchant)
    code = await redis.hget(keys.referral_code_of(), member_key)
    async with redis.pipeline(transaction=True) as pipe:
        if code is not None:
            pipe.hdel(keys.referral_codes(), code)  # a forgotten member recruits no one new
        pipe.hdel(keys.referral_code_of(), member_key)
        pipe.hdel(keys.first_seen(), member_key)
        pipe.hdel(keys.stats_labels(), f"member:{member_key}")
        pipe.srem(keys.referral_pending(), member_key)
        pipe.srem(keys.referral_invitees(), member_key)
        pipe.delete(keys.referral(member_key))
        await pipe.execute()
    for invitee in await redis.smembers(keys.referral_invitees()):
        record = keys.referral(str(invitee))
        if await redis.hget(record, "referrer") == member_key:
            await redis.hset(record, "referrer", pseudonym)
    async for board in redis.scan_iter(match=keys.referral_board("*"), count=500):
        score = await redis.zscore(board, member_key)
        if score is not None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.zincrby(board, score, pseudonym)
                pipe.zrem(board, member_key)
                await pipe.execute()
    async for active in redis.scan_iter(match=keys.stats_active("*", "*"), count=500):
        if await redis.sismember(active, member_key):
            async with redis.pipeline(transaction=True) as pipe:
                pipe.srem(active, member_key)
                pipe.sadd(active, pseudonym)
                await pipe.execute()
    identity = cast(dict[str, str], await redis.hgetall(keys.identity()))
    linked = [m for m, person in identity.items() if m == member_key or person == member_key]
    if linked:
        await redis.hdel(keys.identity(), *linked)
    async for key in redis.scan_iter(match=keys.link_code("*"), count=500):
        if await redis.get(key) == member_key:
            await redis.delete(key)
