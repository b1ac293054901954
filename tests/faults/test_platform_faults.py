"""Platforms misbehaving under traffic — 429s, 500s, lost responses, dropped connections, the
adapter stopped mid-flight — through the real adapters and the stand-ins: every member message
is answered exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from tests.faults.support import SAY, CommandPipeline, sample
from tests.standins.discord_api import DiscordStandIn
from tests.standins.telegram_api import TelegramStandIn
from tests.support.tenancy import approve

GROUPS = (-1001, -1002, -1003, -1004)


@pytest.fixture
async def host(redis_url: str, redis_sync: object) -> AsyncIterator[CommandPipeline]:
    pipeline = CommandPipeline(redis_url, extra=[SAY])
    await pipeline.start()
    await approve(pipeline.redis, *(f"telegram:{g}" for g in GROUPS))  # the shop's own groups
    yield pipeline
    await pipeline.stop()


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStandIn]:
    api = TelegramStandIn()
    await api.start()
    yield api
    await api.stop()


def _waits(platform: str) -> tuple[float, float]:
    """(waits, seconds waited) on rate limits so far, as /metrics shows them."""
    return (sample("shopkeep_rate_limit_waits_total", platform=platform),
            sample("shopkeep_rate_limit_wait_seconds_total", platform=platform))


def _answers(api: TelegramStandIn) -> Counter[str]:
    return Counter(s.text for s in api.sent if s.method == "sendMessage")


async def test_telegram_429s_and_failed_polls_under_traffic(
        tg: TelegramStandIn, host: CommandPipeline) -> None:
    adapter = TelegramAdapter(tg.token, tg.base_url, poll_timeout_s=1)
    await adapter.start(host)
    waits_before, seconds_before = _waits("telegram")
    try:
        tg.fail("sendMessage", 429, "Too Many Requests: retry after 1", times=3, retry_after=1)
        tg.fail("getUpdates", 502, "Bad Gateway", times=2)
        for n in range(24):
            tg.message(GROUPS[n % len(GROUPS)], 500 + n % 6, f"/say {n}")
        expected = Counter(f"said {n}" for n in range(24))
        await tg.wait_for(lambda: sum(_answers(tg).values()) >= 24, timeout=30)
        await asyncio.sleep(0.5)  # room for a duplicate to show up, if there were one
        assert _answers(tg) == expected
        assert tg.rejected[429] == 3 and tg.rejected[502] == 2
        assert adapter.limiter.retry_afters == 3
        waits, seconds = _waits("telegram")
        assert waits - waits_before >= 3 and seconds - seconds_before >= 3.0  # 3 x 1 s asked
    finally:
        await adapter.stop(drain_s=5)


async def test_telegram_adapter_stopped_mid_flight_answers_each_once_after_restart(
        tg: TelegramStandIn, host: CommandPipeline) -> None:
    """Stop without draining while answers are being worked on (a deploy, a crash caught by
    SIGTERM's bound): what was cut short is handled by the next process, once."""
    adapter = TelegramAdapter(tg.token, tg.base_url, poll_timeout_s=1)
    await adapter.start(host)
    for n in range(12):
        tg.message(GROUPS[n % len(GROUPS)], 600 + n, f"/say {n} 0.6")
    await tg.wait_for(lambda: tg.confirmed > 0 or host.router.meter.inflight > 0, timeout=10)
    await asyncio.sleep(0.3)
    await adapter.stop(drain_s=0)  # handlers in flight are cancelled, not finished
    cut_short = 12 - sum(_answers(tg).values())
    assert cut_short > 0, "the stop came too late to cut anything short"
    restarted = TelegramAdapter(tg.token, tg.base_url, poll_timeout_s=1)
    await restarted.start(host)
    try:
        await tg.wait_for(lambda: sum(_answers(tg).values()) >= 12, timeout=30)
        await asyncio.sleep(1.0)
        assert _answers(tg) == Counter(f"said {n}" for n in range(12))
    finally:
        await restarted.stop(drain_s=5)


@pytest.fixture
async def dc() -> AsyncIterator[DiscordStandIn]:
    standin = DiscordStandIn()
    await standin.start()
    yield standin
    await standin.stop()


async def test_discord_429s_lost_responses_and_a_dropped_gateway_under_traffic(
        dc: DiscordStandIn, host: CommandPipeline) -> None:
    await approve(host.redis, f"discord:{dc.guild_id}")  # the shop's own server
    adapter = DiscordAdapter(dc.token, api_url=dc.api_url, gateway_url=dc.gateway_url,
                             guild_ready_timeout=0.1)
    await adapter.start(host)
    waits_before, seconds_before = _waits("discord")
    posts = f"/channels/{dc.general}/messages"
    ping = f"<@{dc.bot_id}>"

    def answers() -> Counter[str]:
        return Counter(m.content for m in dc.messages_in(dc.general))

    try:
        dc.rate_limit("POST", posts, times=3, retry_after=0.3)
        dc.fail_after_create("POST", posts, times=2)
        for n in range(10):
            await dc.message("4" if n % 2 else "5", f"{ping} /say {n}")
        await dc.wait_for(lambda: sum(answers().values()) >= 10, within=30)
        await dc.close_gateway(code=4000)
        for n in range(10, 16):  # written while the bot is away: delivered on RESUME
            await dc.message("4" if n % 2 else "5", f"{ping} /say {n}")
        await dc.wait_for(lambda: sum(answers().values()) >= 16, within=30)
        await asyncio.sleep(0.5)
        assert answers() == Counter(f"said {n}" for n in range(16))
        statuses = Counter(s for m, p, s, _ in dc.requests if m == "POST" and p == posts)
        # The 502s created their message: the retry (same nonce) must not post it again.
        assert statuses[429] == 3 and statuses[502] == 2
        waits, seconds = _waits("discord")
        assert waits - waits_before == 3 and seconds - seconds_before == pytest.approx(0.9)
        assert dc.resumes == 1
    finally:
        await adapter.stop()
