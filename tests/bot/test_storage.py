"""Storage on a real Redis: round trips, merchant isolation, the embedded server's durability."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.persona import Persona, load_persona, save_persona
from bot.storage.embedded import EmbeddedRedis
from bot.storage.keys import Keys, validate_merchant_id
from bot.storage.store import Store


async def test_round_trip_and_isolation(redis_url: str, redis_client: aioredis.Redis) -> None:
    store = Store(redis_url)
    await store.start()
    try:
        await save_persona(store, "acme", Persona(name="Ace", shop_name="Acme",
                                                  style_rules=["Be brief", "No emoji"]))
        await save_persona(store, "zenith", Persona(name="Zed"))
        acme = await load_persona(store, "acme")
        assert (acme.name, acme.shop_name, acme.style_rules) == ("Ace", "Acme",
                                                               ["Be brief", "No emoji"])
        assert (await load_persona(store, "zenith")).name == "Zed"
        assert (await load_persona(store, "nobody")).name == "Shopkeep"
        acme_keys = [k async for k in redis_client.scan_iter(match=Keys("acme").pattern())]
        assert acme_keys and all(k.startswith("sk:acme:") for k in acme_keys)
        assert not any("zenith" in k for k in acme_keys)
    finally:
        await store.stop()


async def test_a_burst_wider_than_the_pool_waits_for_connections_instead_of_failing(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    """1,000 commands at once on 8 connections: each waits its turn; none is lost (redis-py's
    default pool raised "Too many connections" past 100, which lost observations under load)."""
    store = Store(redis_url, max_connections=8)
    await store.start()
    try:
        key = Keys("default").stats_counts("d1")

        async def bump() -> None:
            await store.redis.eval("redis.call('HINCRBY', KEYS[1], 'n', 1)", 1, key)

        await asyncio.gather(*(bump() for _ in range(1000)))
        assert await redis_client.hget(key, "n") == "1000"
        assert len(store.redis.connection_pool._in_use_connections) == 0  # all given back
        assert store.redis.connection_pool.max_connections == 8
    finally:
        await store.stop()


def test_every_key_carries_the_merchant() -> None:
    keys = Keys("acme")
    built = [keys.persona(), keys.faq("x"), keys.product("s"), keys.profile("telegram:1"),
             keys.memory("telegram:1", "telegram:5"), keys.unanswered(), keys.rate("m", 60)]
    assert all(k.startswith("sk:acme:") for k in built)
    for bad in ("Acme", "a:b", "", "x" * 64, "*"):
        with pytest.raises(ValueError):
            validate_merchant_id(bad)


async def test_embedded_server_keeps_data_across_restart(tmp_path: Path) -> None:
    first = Store(None, tmp_path / "var")
    await first.start()
    await first.redis.set("sk:default:meta", "kept")
    await first.redis.hset("sk:default:faq:x", mapping={"q": "?"})
    await first.stop()
    assert (tmp_path / "var" / "appendonly.aof").exists() or any(
        (tmp_path / "var").glob("appendonlydir/*"))

    second = Store(None, tmp_path / "var")
    await second.start()
    try:
        assert await second.redis.get("sk:default:meta") == "kept"
        assert await second.redis.hgetall("sk:default:faq:x") == {"q": "?"}
    finally:
        await second.stop()


async def test_a_second_process_joins_the_running_embedded_server(tmp_path: Path) -> None:
    owner = EmbeddedRedis(tmp_path)
    url = await owner.start()
    joiner = EmbeddedRedis(tmp_path)
    try:
        assert await joiner.start() == url
        await joiner.stop()  # does not own the server: it keeps running
        client = aioredis.from_url(url)
        assert await client.ping()
        await client.aclose()
    finally:
        await owner.stop()
    assert not (tmp_path / "redis.sock").exists()
