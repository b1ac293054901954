"""Flood control: 429s honoured with nothing dropped or repeated, and a limit shared by
several processes through Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis.asyncio as aioredis

from adapters.telegram import FloodLimits, TelegramAdapter
from adapters.telegram.flood import RedisFloodLimiter
from adapters.telegram.journal import QUEUED, SENT, SendJournal
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.events import Destination, Outbound, Platform
from bot.storage.store import Store
from tests.adapters.conftest import TgAdapterFactory, TgCommandHost
from tests.standins.telegram_api import TelegramStandIn
from tests.support.redis_server import RedisServer

GROUP = -100555
LOOSE = FloodLimits(overall_rate=1000, group_rate=1000, group_period_s=1.0)


async def test_a_burst_that_triggers_429s_is_delivered_completely_in_order_once(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    async def echo(ctx: CommandContext) -> str:
        return f"echo {ctx.args['n']}"

    tg_host.registry.register(CommandSpec("echo", "echo", echo, args=(Arg("n", ArgKind.INT),)))
    tg_api.chat_limit = (5, 1.0)  # Telegram's per-group limit, scaled down in time
    # Our own limiter is set far looser than the server so that the server pushes back.
    await tg_adapter(limits=LOOSE)
    tg_api.group(GROUP)
    for n in range(20):
        tg_api.message(GROUP, 100 + n, f"/echo {n}")
    await tg_api.wait_for(lambda: len(tg_api.sent_to(GROUP)) >= 20, timeout=30)
    await asyncio.sleep(0.5)
    assert tg_api.rejected[429] >= 2
    assert [s.text for s in tg_api.sent_to(GROUP)] == [f"echo {n}" for n in range(20)]


async def test_two_processes_share_one_group_limit_through_redis(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    tg_api.chat_limit = (5, 1.0)
    limits = FloodLimits(overall_rate=1000, group_rate=5, group_period_s=1.0)
    first = await tg_adapter(limits=limits)
    second = await tg_adapter(limits=limits)  # another process: same Redis, same bot
    tg_api.group(GROUP)

    async def campaign(adapter: object, tag: str) -> None:
        for n in range(6):
            await adapter.send(Outbound(  # type: ignore[attr-defined]
                text=f"{tag}{n}", destination=Destination(Platform.TELEGRAM, str(GROUP))))

    started = time.monotonic()
    await asyncio.gather(campaign(first, "a"), campaign(second, "b"))
    elapsed = time.monotonic() - started
    sent = [s.text for s in tg_api.sent_to(GROUP)]
    assert sorted(sent) == sorted([f"a{n}" for n in range(6)] + [f"b{n}" for n in range(6)])
    assert tg_api.rejected[429] == 0  # the shared windows kept both under the server's limit
    assert elapsed >= 2.0  # 12 messages at 5 per second need two full windows


async def test_a_send_slow_on_the_way_still_counts_from_when_telegram_saw_it(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    # The first message takes 0.5 s to reach Telegram (what a loaded event loop or network
    # does to the shared test above): Telegram's window for it opens 0.5 s after our slot.
    # Dating slots at the answer keeps the sixth message out of that window; dating them
    # when the slot was taken sent it 0.45 s too early and got a 429.
    tg_api.chat_limit = (5, 1.0)
    adapter = await tg_adapter(limits=FloodLimits(overall_rate=1000, group_rate=5,
                                                  group_period_s=1.0))
    tg_api.group(GROUP)
    tg_api.slow_next(0.5)
    for n in range(6):
        await adapter.send(Outbound(text=f"m{n}",
                                    destination=Destination(Platform.TELEGRAM, str(GROUP))))
    assert [s.text for s in tg_api.sent_to(GROUP)] == [f"m{n}" for n in range(6)]
    assert tg_api.rejected[429] == 0


async def test_retry_after_pauses_every_process(redis_client: aioredis.Redis) -> None:
    limiter = RedisFloodLimiter(redis_client, "77", FloodLimits(group_period_s=1.0))
    other = RedisFloodLimiter(redis_client, "77", FloodLimits(group_period_s=1.0))
    from telegram.error import RetryAfter

    calls = 0

    async def flaky() -> dict[str, object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryAfter(1)
        return {"ok": True}

    task = asyncio.create_task(limiter.process_request(
        flaky, (), {}, "sendMessage", {"chat_id": -1}, None))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await other.acquire("-2")  # a different chat in another process waits for the pause too
    assert time.monotonic() - started >= 0.6
    assert await task == {"ok": True} and calls == 2 and limiter.retry_afters == 1


async def test_messages_still_go_out_while_redis_is_down(
    tg_api: TelegramStandIn, tmp_path: Path
) -> None:
    server = RedisServer()
    server.start()
    store = Store(server.url, tmp_path)
    await store.start()
    adapter = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    await adapter.start(TgCommandHost(store))
    tg_api.group(GROUP)
    try:
        server.kill()
        ids = await adapter.send(Outbound(
            text="still here", destination=Destination(Platform.TELEGRAM, str(GROUP))))
        assert len(ids) == 1 and [s.text for s in tg_api.sent_to(GROUP)] == ["still here"]
    finally:
        await adapter.stop(drain_s=1)
        await store.stop()
        server.stop()


async def test_an_idempotent_send_waiting_out_a_429_is_journaled_as_not_posted(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, redis_client: aioredis.Redis
) -> None:
    # While the bot waits out Telegram's "retry after", nothing of the message is out: a
    # process killed then must leave proof that posting it again cannot double it.
    adapter = await tg_adapter(limits=LOOSE)
    tg_api.group(GROUP)
    tg_api.fail("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
    out = Outbound(text="sale", idempotency_key="campaign:x:1",
                   destination=Destination(Platform.TELEGRAM, str(GROUP)))
    sending = asyncio.create_task(adapter.send(out))
    await tg_api.wait_for(lambda: tg_api.rejected[429] == 1)
    journal = SendJournal(redis_client, adapter.bot_id)
    assert (await journal.open("campaign:x:1")).state == QUEUED
    ids = await sending
    entry = await journal.open("campaign:x:1")
    assert (entry.state, entry.ids) == (SENT, ids) and len(ids) == 1
