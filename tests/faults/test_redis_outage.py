"""Redis killed and restarted under traffic: every message answered once, nothing acknowledged
lost, a plain "can't reach my memory" while it is down, and normal service after by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.events import CommunityRef, Inbound, MemberRef, Platform, Privilege
from bot.persona import load_persona
from tests.faults.support import GENERIC_ERROR, STORAGE_DOWN, CommandPipeline, sample
from tests.support.redis_server import RedisServer

ACK = "I'll answer questions in this channel"
MEMBERS = 4


@pytest.fixture
async def crashable() -> AsyncIterator[RedisServer]:
    """A Redis of our own (AOF, fsync always) that the test may kill."""
    server = RedisServer()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


def _add_channel(member: int, n: int) -> Inbound:
    user = f"mod{member}"
    return Inbound(
        platform=Platform.CONSOLE, member=MemberRef(Platform.CONSOLE, user, user),
        text="/helpchannel add", privilege=Privilege.MODERATOR, mentions_bot=True,
        community=CommunityRef(Platform.CONSOLE, "shop", f"c{member}-{n}"),
    )


async def test_redis_killed_and_restarted_under_traffic(crashable: RedisServer) -> None:
    pipeline = CommandPipeline(crashable.url)
    await pipeline.start()
    console = await pipeline.console()
    storage_errors_before = sample("shopkeep_redis_errors_total", where="router")
    sent: dict[str, list[str]] = {}  # channel -> the replies it got
    stop_at = time.monotonic() + 60

    async def member(index: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            inbound = _add_channel(index, n)
            replies = await pipeline.handle(inbound)
            sent[inbound.community.channel_key] = [r.text for r in replies]  # type: ignore[union-attr]
            n += 1
            await asyncio.sleep(0.02)

    try:
        assert (await console.say("/persona set name Marta"))[0].text.startswith("Persona name")
        traffic = [asyncio.create_task(member(i)) for i in range(MEMBERS)]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(crashable.kill)
        killed_at = len(sent)
        # The store retries for ~3 s before giving up; 5 s down lets some messages fail.
        await asyncio.sleep(5.0)
        await asyncio.to_thread(crashable.start)
        restarted_at = len(sent)
        await asyncio.sleep(2.0)
        stop_at = time.monotonic()
        await asyncio.gather(*traffic)

        # Exact accounting: every message got exactly one reply, of one of two kinds.
        assert len(sent) > restarted_at > killed_at > 0
        assert all(len(replies) == 1 for replies in sent.values())
        texts = [replies[0] for replies in sent.values()]
        acked = {ch for ch, replies in sent.items() if replies[0].startswith(ACK)}
        down = [t for t in texts if t.startswith(STORAGE_DOWN)]
        assert len(acked) + len(down) == len(sent), [t for t in texts if t not in down][:3]
        assert not any(GENERIC_ERROR in t for t in texts)
        assert down, "no member was told the memory is unreachable while Redis was down"
        after = sample("shopkeep_redis_errors_total", where="router")
        assert after - storage_errors_before == len(down)

        # Nothing acknowledged is lost: the AOF replayed every acknowledged write.
        stored = await pipeline.redis.smembers(pipeline.store.keys("default").help_channels())
        assert acked <= set(stored), sorted(acked - set(stored))[:5]
        assert (await load_persona(pipeline.store, "default")).name == "Marta"

        # Recovered by itself, without a restart of the bot: the next commands just work.
        for _ in range(3):
            replies = await console.say("/persona set tone Calm")
            assert [r.text for r in replies] == ["Persona tone is now: Calm"]
    finally:
        stop_at = time.monotonic()
        await pipeline.stop()


async def test_commands_during_outage_lose_nothing_already_stored(
        crashable: RedisServer) -> None:
    """A moderator keeps typing while Redis is down: each command is answered plainly, and the
    data stored before is intact afterwards (no partial overwrite on a failed write)."""
    pipeline = CommandPipeline(crashable.url)
    await pipeline.start()
    console = await pipeline.console()
    try:
        await console.say("/persona set shop_name Trailhead Outfitters")
        await console.say("/helpchannel add")
        raw = aioredis.from_url(crashable.url, decode_responses=True)
        before = await raw.hgetall("sk:default:persona")
        await raw.aclose()
        await asyncio.to_thread(crashable.kill)
        outage = ["/persona set shop_name Lost Shop", "/helpchannel remove", "/persona show",
                  "/helpchannel list"]
        replies = await asyncio.gather(*(console.say(text) for text in outage))
        assert [len(r) for r in replies] == [1] * len(outage)
        assert all(r[0].text.startswith(STORAGE_DOWN) for r in replies)
        await asyncio.to_thread(crashable.start)
        after = await pipeline.redis.hgetall("sk:default:persona")
        assert after == before
        listing = await console.say("/helpchannel list")
        assert listing[0].text == "Help channels: console:console"
    finally:
        await pipeline.stop()
