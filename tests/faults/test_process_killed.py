"""The bot process SIGKILLed in the middle of a campaign run and of a conversation: the next
process finishes the work, and every channel gets the post, and every message its answer,
exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.campaigns.models import Campaign, ScheduleSpec, parse_targets
from bot.campaigns.repository import CampaignRepo
from bot.storage.store import Store
from tests.standins.discord_api import DiscordStandIn, snowflake
from tests.standins.telegram_api import TelegramStandIn
from tests.support.tenancy import approve

ROOT = Path(__file__).resolve().parents[2]
RUN = "2026-05-01T09:00:00+00:00"
TEXT = "Spring tents are in: the Trailhead 2P is back."
CHANNELS = 80  # at Discord's 40 posts/s pacing, a two-second run: room to kill it mid-way


@pytest.fixture
async def dc() -> AsyncIterator[DiscordStandIn]:
    standin = DiscordStandIn()
    await standin.start()
    yield standin
    await standin.stop()


async def _child(dc: DiscordStandIn, redis_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.faults.campaign_process", "--redis", redis_url,
        "--api", dc.api_url, "--gateway", dc.gateway_url, "--token", dc.token,
        "--campaign", "default/spring", "--run", RUN, "--lock-ttl", "1.0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _lines(proc: asyncio.subprocess.Process) -> list[dict[str, object]]:
    assert proc.stdout is not None
    out = []
    for raw in (await proc.stdout.read()).decode().splitlines():
        if raw.startswith("{"):
            out.append(json.loads(raw))
    return out


async def test_killed_mid_campaign_the_restart_posts_each_target_once(
        dc: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis) -> None:
    channels = [snowflake() for _ in range(CHANNELS)]
    store = Store(redis_url)
    await store.start()
    try:
        await CampaignRepo(store).create(Campaign(
            merchant="default", name="spring", brief="spring tents",
            targets=parse_targets(",".join(f"discord:{c}" for c in channels)),
            schedule=ScheduleSpec("once", "2030-01-01T09:00:00+00:00", "UTC"),
            approved_text=TEXT, draft_text=TEXT, created_at=time.time()))
    finally:
        await store.stop()

    def posts() -> Counter[str]:
        return Counter(s.channel_id for s in dc.sent if s.kind == "message"
                       and s.channel_id in set(channels))

    first = await _child(dc, redis_url)
    # The worst moment: right after a post landed, before the process could record it.
    await dc.wait_for(lambda: sum(posts().values()) >= CHANNELS // 4, within=60)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    at_kill = sum(posts().values())
    assert 0 < at_kill < CHANNELS, "the kill did not land mid-run"

    second = await _child(dc, redis_url)
    stdout_task = asyncio.create_task(_lines(second))
    assert await asyncio.wait_for(second.wait(), 60) == 0, (
        (await second.stderr.read()).decode()[-2000:] if second.stderr else "")
    result = next(line for line in await stdout_task if line.get("event") == "result")

    assert posts() == Counter({c: 1 for c in channels})  # posts per target per run = 1
    assert all(s.content == TEXT for s in dc.sent if s.channel_id in set(channels))
    assert (result["status"], result["sent"], result["failed"]) == ("done", CHANNELS, 0)
    # Recorded before the kill: all that were posted but the one in flight, which the restart
    # sent again with the same nonce (so Discord returned the first message, no second post).
    resumed = int(str(result["resumed"]))
    assert at_kill - 1 <= resumed <= at_kill


async def _bot_process(tg: TelegramStandIn, redis_url: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.faults.telegram_process", "--redis", redis_url,
        "--api", tg.base_url, "--token", tg.token, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    return proc


async def test_killed_mid_conversation_every_message_is_answered_once_after_restart(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    tg = TelegramStandIn()
    await tg.start()
    groups = (-3001, -3002, -3003, -3004)

    def answers() -> Counter[str]:
        return Counter(s.text for s in tg.sent if s.method == "sendMessage")

    await approve(redis_client, *(f"telegram:{g}" for g in groups))  # the shop's own groups
    try:
        first = await _bot_process(tg, redis_url)
        for n in range(16):  # four per chat; each answer takes 0.6 s, in order per chat
            tg.message(groups[n % 4], 700 + n, f"/say {n} 0.6")
        await tg.wait_for(lambda: sum(answers().values()) >= 1, timeout=30)
        await asyncio.sleep(0.3)  # between answers: the next four are being worked on
        first.send_signal(signal.SIGKILL)
        await first.wait()
        at_kill = sum(answers().values())
        assert 0 < at_kill < 16, "the kill did not land mid-conversation"

        second = await _bot_process(tg, redis_url)
        await tg.wait_for(lambda: sum(answers().values()) >= 16, timeout=60)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0  # a graceful stop, in time
        assert answers() == Counter(f"said {n}" for n in range(16))
    finally:
        await tg.stop()
