"""The bot process SIGKILLed in the middle of a campaign run: the next process finishes the
run, and every channel gets the post exactly once."""

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
