"""Rate limits and token budgets hold across two processes sharing one Redis."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest
import redis.asyncio as aioredis

from bot.errors import RateLimited
from bot.limits import Limits, LimitSettings
from bot.storage.keys import Keys

SETTINGS = LimitSettings(member_per_minute=5, community_per_minute=12,
                         community_daily_tokens=1000)
NOW = 1_700_000_000.0  # one fixed minute for every process


async def _hammer(url: str, members: list[str], tries: int) -> tuple[int, int]:
    client = aioredis.from_url(url, decode_responses=True)
    limits = Limits(client, SETTINGS)
    allowed = refused = 0
    try:
        for _ in range(tries):
            for member in members:
                try:
                    await limits.hit(Keys("default"), member, "discord:guild", now=NOW)
                    allowed += 1
                except RateLimited:
                    refused += 1
        return allowed, refused
    finally:
        await client.aclose()


def _hammer_process(url: str, members: list[str], tries: int,
                    out: multiprocessing.Queue[tuple[int, int]]) -> None:
    out.put(asyncio.run(_hammer(url, members, tries)))


async def _reserve(url: str, count: int) -> int:
    client = aioredis.from_url(url, decode_responses=True)
    limits = Limits(client, SETTINGS)
    granted = 0
    try:
        for _ in range(count):
            try:
                await limits.reserve_tokens(Keys("default"), "discord:guild", 70, day="d1")
                granted += 1
            except RateLimited:
                pass
        return granted
    finally:
        await client.aclose()


def _reserve_process(url: str, count: int, out: multiprocessing.Queue[int]) -> None:
    out.put(asyncio.run(_reserve(url, count)))


def _run_two(target: object, args: tuple[object, ...]) -> list[object]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, queue))  # type: ignore[attr-defined]
             for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return results


async def test_member_limit_holds_across_two_processes(redis_url: str,
                                                       redis_client: aioredis.Redis) -> None:
    results = _run_two(_hammer_process, (redis_url, ["console:ann"], 8))
    allowed = sum(r[0] for r in results)  # type: ignore[index]
    assert allowed == SETTINGS.member_per_minute
    assert sum(r[1] for r in results) == 16 - allowed  # type: ignore[index]


async def test_community_limit_holds_across_two_processes(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    members = [f"console:m{i}" for i in range(6)]  # 6 members x 2 tries x 2 processes = 24
    results = _run_two(_hammer_process, (redis_url, members, 2))
    assert sum(r[0] for r in results) == SETTINGS.community_per_minute  # type: ignore[index]


async def test_token_budget_holds_across_two_processes(redis_url: str,
                                                       redis_client: aioredis.Redis) -> None:
    results = _run_two(_reserve_process, (redis_url, 10))
    assert sum(results) == 1000 // 70  # type: ignore[arg-type]
    limits = Limits(redis_client, SETTINGS)
    assert await limits.tokens_used(Keys("default"), "discord:guild", day="d1") == 14 * 70


async def test_refused_messages_do_not_use_quota_and_the_window_moves(
        redis_client: aioredis.Redis) -> None:
    limits = Limits(redis_client, SETTINGS)
    keys = Keys("default")
    for _ in range(5):
        await limits.hit(keys, "console:bob", None, now=NOW)
    for _ in range(3):
        with pytest.raises(RateLimited, match="faster than I can answer"):
            await limits.hit(keys, "console:bob", None, now=NOW)
    await limits.hit(keys, "console:bob", None, now=NOW + 60)  # next minute
    await limits.hit(keys, "console:eve", None, now=NOW)  # another member is unaffected
    ttl = await redis_client.ttl(keys.rate("member:console:bob", int(NOW // 60)))
    assert 0 < ttl <= 120  # windows expire; nothing piles up


async def test_settle_corrects_a_reservation(redis_client: aioredis.Redis) -> None:
    limits = Limits(redis_client, SETTINGS)
    keys = Keys("shop-2")
    key = await limits.reserve_tokens(keys, "discord:guild", 600, day="d2")
    await limits.settle(key, 600, 150)
    assert await limits.tokens_used(keys, "discord:guild", day="d2") == 150
    await limits.reserve_tokens(keys, "discord:guild", 800, day="d2")
    with pytest.raises(RateLimited, match="as much as I can for this community today"):
        await limits.reserve_tokens(keys, "discord:guild", 100, day="d2")


async def test_direct_messages_have_a_budget_per_member(redis_client: aioredis.Redis) -> None:
    limits = Limits(redis_client, LimitSettings(5, 12, community_daily_tokens=1000,
                                                member_daily_tokens=300))
    keys = Keys("shop-2")
    for _ in range(3):
        await limits.reserve_tokens(keys, None, 100, day="d3", member_key="telegram:1")
    with pytest.raises(RateLimited, match="as much as I can for you today"):
        await limits.reserve_tokens(keys, None, 1, day="d3", member_key="telegram:1")
    for member in range(2, 50):  # every other member's DMs are unaffected
        await limits.reserve_tokens(keys, None, 100, day="d3", member_key=f"telegram:{member}")
    assert await limits.tokens_used(keys, None, day="d3", member_key="telegram:1") == 300
    assert await limits.tokens_used(keys, None, day="d3", member_key="telegram:2") == 100
    await limits.reserve_tokens(keys, "telegram:-100", 900, day="d3")  # communities: their own
