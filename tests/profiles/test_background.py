"""Background work with the real models: LM summaries, retention, history back-fill, and
queued messages surviving a restart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np

from bot.profiles.catalog import CatalogCache
from bot.profiles.history import import_history, parse_history
from bot.profiles.ingest import ProfileWriter
from bot.profiles.model import Profile
from bot.profiles.queue import IngestItem, IngestQueue
from bot.profiles.segments import Segments
from bot.profiles.summary import Maintenance, clean_summary, facts_summary, usable
from bot.storage.store import Store
from lm_service.api import LMClient
from tests.profiles.support import import_demo_catalog, make_profile, save_profile
from tests.support.redis_server import RedisServer

DAY = 86_400


def writer_for(store: Store, lm: LMClient, retention_days: int = 365) -> ProfileWriter:
    return ProfileWriter(store, CatalogCache(store, lm), retention_days, summary_every=3)


async def test_active_members_get_an_lm_summary_when_their_profile_moved(
        store: Store, lm_client: LMClient) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    writer = writer_for(store, lm_client)
    texts = ["planning a winter camping trip in the mountains",
             "which tent survives heavy snow?", "I want really light gear, weight matters"]
    now = time.time()
    await writer.write([IngestItem("shop", "telegram:1", "telegram", t, now + i)
                        for i, t in enumerate(texts)], await lm_client.embed(texts))
    keys = store.keys("shop")
    assert await store.redis.zrange(keys.profile_dirty(), 0, -1) == ["telegram:1"]
    maintenance = Maintenance(store, lm_client, 365, interval_s=60)
    assert await maintenance.summarize_stale("shop") == 1
    profile = Profile.from_hash("telegram:1", await store.redis.hgetall(keys.profile("telegram:1")))
    assert profile.summary and len(profile.summary) <= 240 and "\n" not in profile.summary
    assert profile.summary_at == 3
    assert await store.redis.zcard(keys.profile_dirty()) == 0
    # Unchanged since: not stale again until `summary_every` more messages arrive.
    await writer.write([IngestItem("shop", "telegram:1", "telegram", "hi", now + 9)],
                       await lm_client.embed(["hi"]))
    assert await store.redis.zcard(keys.profile_dirty()) == 0


async def test_a_forgotten_member_gets_no_summary_back(store: Store, lm_client: LMClient) -> None:
    keys = store.keys("shop")
    await store.redis.zadd(keys.profile_dirty(), {"telegram:9": time.time()})
    maintenance = Maintenance(store, lm_client, 365, interval_s=60)
    assert await maintenance.summarize("shop", "telegram:9") is None
    assert not await store.redis.exists(keys.profile("telegram:9"))
    assert await store.redis.zcard(keys.profile_dirty()) == 0


def test_letters_and_templates_are_not_summaries() -> None:
    profile = Profile("telegram:1", affinity={"c:tents": 0.7, "t:winter": 0.4}, messages=5,
                      on_topic=4, recent=["which tent for snow?"], bought={"TH-TENT-2P"})
    assert usable("Plans winter camping; wants a tent for snow.", profile)
    assert not usable("Hi [Customer's Name]", profile)
    assert not usable("Dear customer, thank you for your tent question", profile)
    assert not usable("Likes kayaks very much indeed.", profile)  # nothing they said
    assert facts_summary(profile) == ("Interested in tents and winter; 4 of 5 messages about "
                                      "products; says they bought TH-TENT-2P.")


def test_clean_summary_keeps_one_plain_line() -> None:
    assert clean_summary('\n"Summary: Plans winter camping."\nMore text') == \
        "Plans winter camping."
    assert len(clean_summary("word " * 200)) <= 241


async def test_idle_profiles_expire(store: Store, lm_client: LMClient) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    writer = writer_for(store, lm_client, retention_days=30)
    now = time.time()
    texts = ["need a tent", "need a stove"]
    await writer.write([IngestItem("shop", "telegram:old", "telegram", texts[0], now - 40 * DAY),
                        IngestItem("shop", "telegram:new", "telegram", texts[1], now - DAY)],
                       await lm_client.embed(texts))
    keys = store.keys("shop")
    # Redis expires them by itself, counted from the last message...
    assert 0 < await store.redis.ttl(keys.profile("telegram:old")) <= 60
    assert 28 * DAY < await store.redis.ttl(keys.profile("telegram:new")) <= 29 * DAY
    # ...and the sweep drops whatever is past retention from the index at once.
    await save_profile(store, "shop", make_profile("telegram:older", last_seen=now - 90 * DAY))
    maintenance = Maintenance(store, lm_client, 30, interval_s=60)
    assert await maintenance.sweep("shop", now) == 2
    assert await store.redis.zrange(keys.profile_index(), 0, -1) == ["telegram:new"]
    assert not await store.redis.exists(keys.profile("telegram:older"))


async def test_history_backfill_builds_profiles_segments_can_use(
        store: Store, lm_client: LMClient, tmp_path: Path) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    now = time.time()
    rows = [{"platform": "telegram", "community": "-1001", "user": 1, "ts": now - 3 * DAY,
             "text": t} for t in ("looking at tents for a family trip",
                                  "does the 6 person tent have a divider?", "/start")]
    rows += [{"platform": "discord", "community": "g1", "user": "2", "ts": now - 2 * DAY,
              "text": t} for t in ("my camp stove needs a new burner", "")]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    advanced: list[int] = []
    result = await import_history(writer_for(store, lm_client), lm_client, "shop",
                                  parse_history(path), batch=2, progress=advanced.append)
    assert (result.messages, result.members, result.skipped) == (3, 2, 2)
    assert sum(advanced) == len(rows)
    segments = Segments(store)
    assert await segments.members_matching("shop", "interest:tents>0.3") == ["telegram:1"]
    assert await segments.members_matching("shop", "platform:discord active:7d") == ["discord:2"]
    profile = Profile.from_hash("telegram:1", await store.redis.hgetall(
        store.keys("shop").profile("telegram:1")))
    assert profile.communities == {"telegram:-1001"} and profile.messages == 2
    assert abs(profile.last_seen - (now - 3 * DAY)) < 1


async def test_queued_messages_survive_a_restart(store: Store, lm_client: LMClient) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    await store.register_merchant("shop")
    writer = writer_for(store, lm_client)
    first = IngestQueue(store, lm_client.embed, writer.write, maxsize=5, batch=4)
    # Not started: nothing is processed, 5 wait in memory and 15 spill to the stream.
    for n in range(20):
        await first.submit(IngestItem("shop", f"telegram:{n % 4}", "telegram",
                                      f"a tent for trip {n}", time.time()))
    assert first.spilled_total == 15
    await first.stop()  # the 5 in memory are parked in Redis too
    keys = store.keys("shop")
    assert await store.redis.xlen(keys.profile_ingest()) == 20
    second = IngestQueue(store, lm_client.embed, writer.write, maxsize=5, batch=4)
    await second.start()
    try:
        await second.flush(within_s=120)
    finally:
        await second.stop()
    counts = [Profile.from_hash(str(m), await store.redis.hgetall(
        keys.profile(f"telegram:{m}"))).messages for m in range(4)]
    assert counts == [5, 5, 5, 5]
    assert await store.redis.xlen(keys.profile_ingest()) == 0
    vector = Profile.from_hash("telegram:0", await store.redis.hgetall(
        keys.profile("telegram:0"))).vector
    assert vector is not None and abs(float(np.linalg.norm(vector)) - 1) < 1e-2


async def test_messages_queued_while_redis_is_down_are_written_when_it_is_back(
        lm_client: LMClient) -> None:
    server = RedisServer()
    server.start()
    store = Store(server.url)
    await store.start()
    try:
        await import_demo_catalog(store, lm_client, "shop")
        writer = writer_for(store, lm_client)
        await writer.catalog.get("shop")
        queue = IngestQueue(store, lm_client.embed, writer.write, maxsize=100, batch=8)
        await queue.start()
        server.kill()
        for n in range(30):  # taken while Redis is down: the memory queue holds them
            await queue.submit(IngestItem("shop", f"telegram:{n % 3}", "telegram",
                                          f"which tent for trip {n}?", time.time()))
        await asyncio.sleep(1.0)
        server.start()
        await queue.flush(within_s=120)
        await queue.stop()
        keys = store.keys("shop")
        counts = [Profile.from_hash("m", await store.redis.hgetall(
            keys.profile(f"telegram:{m}"))).messages for m in range(3)]
        assert counts == [10, 10, 10]
    finally:
        await store.stop()
        server.stop()


async def test_stop_ends_a_stage_that_swallowed_its_cancellation(
        store: Store, lm_client: LMClient) -> None:
    """Python 3.11's `asyncio.wait_for` can swallow a cancellation that arrives with its
    result; the embedding stage then tried to hand its batch to the (stopped) writer for ever
    and `stop()` never returned. Here the real embedder's reply "wins" over the first cancel."""
    await import_demo_catalog(store, lm_client, "shop")
    writer = writer_for(store, lm_client)
    entered = asyncio.Event()

    async def embed_swallowing_one_cancel(texts: list[str]) -> list[list[float]]:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # what wait_for does when the result is already there
        return await lm_client.embed(texts)

    queue = IngestQueue(store, embed_swallowing_one_cancel, writer.write, maxsize=50, batch=4)
    await queue.start()
    for n in range(12):
        await queue.submit(IngestItem("shop", f"telegram:{n % 3}", "telegram",
                                      f"a stove for trip {n}", time.time()))
    await asyncio.wait_for(entered.wait(), 10)
    await asyncio.wait_for(queue.stop(), 30)  # hung for ever before
    keys = store.keys("shop")
    written = 0
    for m in range(3):
        data = await store.redis.hgetall(keys.profile(f"telegram:{m}"))
        written += Profile.from_hash(f"telegram:{m}", data).messages if data else 0
    assert written + await store.redis.xlen(keys.profile_ingest()) == 12  # none lost
