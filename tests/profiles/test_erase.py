"""Erasing a member: every key of theirs goes, shared logs are scrubbed, hooks pseudonymise."""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from bot.profiles.erase import Eraser, mentions, pseudonym
from bot.storage.store import Store
from tests.profiles.support import make_profile, save_profile

ALICE, BOB = "telegram:42", "telegram:420"  # one id is a prefix of the other on purpose


async def _everything_mentioning(store: Store, member: str) -> list[str]:
    """Every key named after the member, and every stored value that names them. Read as
    bytes: other features keep binary values (the scheduler's pickled jobs)."""
    url = store.url
    assert url is not None
    raw = aioredis.from_url(url)
    found = []
    try:
        async for key_bytes in raw.scan_iter(match="*", count=1000):
            key = key_bytes.decode()
            if mentions(key, member):
                found.append(key)
                continue
            kind = (await raw.type(key)).decode()
            values: list[Any] = []
            if kind == "string":
                values = [await raw.get(key)]
            elif kind == "hash":
                values = [k + b" " + v for k, v in (await raw.hgetall(key)).items()]
            elif kind == "list":
                values = await raw.lrange(key, 0, -1)
            elif kind == "set":
                values = list(await raw.smembers(key))
            elif kind == "zset":
                values = await raw.zrange(key, 0, -1)
            elif kind == "stream":
                values = [repr(f).encode() for _, f in await raw.xrange(key)]
            if any(mentions(v.decode(errors="replace"), member) for v in values):
                found.append(key)
    finally:
        await raw.aclose()
    return found


async def _seed(store: Store, merchant: str) -> None:
    keys = store.keys(merchant)
    now = time.time()
    for member in (ALICE, BOB):
        await save_profile(store, merchant, make_profile(member, last_seen=now))
        await store.redis.rpush(keys.memory(member, "telegram:-100"), "q", "a")
        await store.redis.zadd(keys.profile_dirty(), {member: now})
        await store.redis.lpush(keys.unanswered(), json.dumps(
            {"question": "do you sell kayaks?", "member": member, "ts": now}))
    await store.redis.sadd(keys.opted_out(), ALICE)
    await store.redis.set(keys.forget_pending(ALICE), "1")


async def test_erase_leaves_no_key_or_entry_of_the_member(store: Store) -> None:
    merchant = "shop"
    await _seed(store, merchant)
    await _seed(store, "other-shop")
    seen: list[tuple[str, str, str]] = []

    async def referrals(m: str, member: str, alias: str) -> None:
        seen.append((m, member, alias))

    eraser = Eraser(store)
    eraser.register(referrals)
    assert await _everything_mentioning(store, ALICE)  # the scan does find data before
    assert await eraser.erase(merchant, ALICE) == []
    left = [k for k in await _everything_mentioning(store, ALICE) if ":other-shop:" not in k]
    assert left == []
    assert seen == [(merchant, ALICE, pseudonym(merchant, ALICE))]
    # Bob, whose id merely starts with Alice's, and the other merchant keep everything.
    keys = store.keys(merchant)
    assert await store.redis.exists(keys.profile(BOB), keys.memory(BOB, "telegram:-100")) == 2
    log = [json.loads(e) for e in await store.redis.lrange(keys.unanswered(), 0, -1)]
    assert [e["member"] for e in log] == [BOB]
    other = store.keys("other-shop")
    assert await store.redis.exists(other.profile(ALICE)) == 1


async def test_a_failing_hook_is_reported_and_the_rest_still_runs(store: Store) -> None:
    await _seed(store, "shop")
    ran: list[str] = []

    async def broken(m: str, member: str, alias: str) -> None:
        raise RuntimeError("referrals down")

    async def fine(m: str, member: str, alias: str) -> None:
        ran.append(alias)

    eraser = Eraser(store)
    eraser.register(broken)
    eraser.register(fine)
    failed = await eraser.erase("shop", ALICE)
    assert len(failed) == 1 and "broken" in failed[0]
    assert ran == [pseudonym("shop", ALICE)]
    assert not await store.redis.exists(store.keys("shop").profile(ALICE))


def test_pseudonym_is_stable_and_reveals_nothing() -> None:
    alias = pseudonym("shop", ALICE)
    assert alias == pseudonym("shop", ALICE) != pseudonym("other", ALICE)
    assert alias.startswith("forgotten:") and ALICE not in alias


def test_mentions_matches_whole_ids_only() -> None:
    assert mentions('{"member": "telegram:42"}', ALICE)
    assert not mentions('{"member": "telegram:420"}', ALICE)
    assert not mentions("xtelegram:42", ALICE)
    assert mentions("sk:shop:memory:telegram:42:telegram:-100", ALICE)
