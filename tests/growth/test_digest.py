"""The weekly digest: a valid PNG, the week's figures in words, posted once across processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json

import pytest
import redis.asyncio as aioredis
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from PIL import Image

from adapters.console import ConsoleAdapter
from bot.errors import ConfigError, UserInputError
from bot.events import Citation, Platform, Privilege
from bot.growth import GrowthFeature, run_weekly_digest, schedule_digest
from bot.growth.chart import render_digest_chart
from bot.growth.digest import build_digest
from bot.growth.periods import DAY_S
from bot.storage.keys import Keys, scheduler_jobs
from tests.growth.conftest import Build, inbound, say

M = "default"
WEEK = "2026-W46"  # Monday 9 to Sunday 15 November 2026
MONDAY = dt.datetime(2026, 11, 9, 10, 0, tzinfo=dt.UTC).timestamp()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.verify()  # checks the chunks and their CRCs
    return Image.open(io.BytesIO(data)).size


async def _seed_week(growth: GrowthFeature, redis: aioredis.Redis) -> None:
    growth.settings.referral_stay_days = 1
    growth.settings.referral_min_messages = 0
    for day in range(7):
        for user in range(day + 1):
            await growth.observe(inbound(Platform.TELEGRAM, str(user), "hi",
                                         ts=MONDAY + day * DAY_S), M)
    await growth.observe(inbound(Platform.DISCORD, "9", "hi", ts=MONDAY - 3 * DAY_S), M)
    await growth.record_answer(M, "telegram", True, [Citation("faq", "returns", "Returns")],
                               ts=MONDAY)
    await growth.record_answer(M, "telegram", False, [], ts=MONDAY + DAY_S)
    await growth.count_interests(M, ["tents", "stoves"], ts=MONDAY + DAY_S)
    await growth.count_interests(M, ["tents"], ts=MONDAY + 2 * DAY_S)
    await growth.record_delivery(M, "discord", 12, ts=MONDAY + 3 * DAY_S)
    code = await growth.referrals.code_for(M, "telegram:0", "Ann")
    await growth.member_joined(M, "telegram:50", code, ts=MONDAY)
    await redis.rpush(Keys(M).unanswered(), json.dumps(
        {"question": "do you sell gift cards?", "member": "telegram:3", "ts": MONDAY + 60,
         "community": "telegram:c1"}))


def test_chart_is_a_valid_png() -> None:
    daily = [(f"2026-11-{9 + n:02d}", n, 3 * n, n % 2) for n in range(7)]
    png = render_digest_chart("Community week 2026-W46", daily,
                              [("tents", 5, 2), ("stoves", 3, 4)])
    assert _png_size(png) == (1000, 360)
    empty = render_digest_chart("Quiet week", [(d, 0, 0, 0) for d, *_ in daily], [])
    assert _png_size(empty) == (1000, 360)
    assert empty != png


async def test_digest_says_what_happened_that_week(growth: GrowthFeature,
                                                   redis_client: aioredis.Redis) -> None:
    await _seed_week(growth, redis_client)
    text, png = await build_digest(growth, M, WEEK)
    lines = text.splitlines()
    assert lines[0] == "Weekly digest, 2026-11-09 to 2026-11-15"
    assert "Active members: 7 (week before: 1); messages: 28 (week before: 1)." in text
    assert "Questions to the bot: 2 (50% answered from your sources)." in text
    assert "Sources used most: Returns." in text
    assert "Top interests: tents (2, week before 0), stoves (1, week before 0)." in text
    assert "Campaign messages delivered: 12." in text
    assert "Referrals credited: 1, withdrawn: 0, new referred joins: 1." in text
    assert "Top referrers this month: Ann (1)." in text
    assert "1 question(s) went unanswered" in text
    _png_size(png)


async def test_digest_posts_once_with_two_processes(make_growth: Build,
                                                    redis_client: aioredis.Redis) -> None:
    first, second = await make_growth(), await make_growth(digest_channel="telegram:-100")
    await _seed_week(first, redis_client)
    adapters = []
    for growth in (first, second):
        adapter = ConsoleAdapter(interactive=False)
        adapter.platform = Platform.TELEGRAM  # stands in for Telegram at the platform edge
        growth.core.outbox.attach(adapter)
        adapters.append(adapter)
    # A moderator picks the channel; it is stored in Redis, so it wins over the second
    # process's own setting and both processes aim at the same place.
    await say(first, inbound(Platform.TELEGRAM, "1", "/digest channel", role=Privilege.MODERATOR,
                             community="-100"))
    posted = await asyncio.gather(*(run_weekly_digest(M, WEEK, core=g.core)
                                    for g in (first, second, first, second)))
    assert sorted(posted) == [False, False, False, True]
    sent = [o for a in adapters for o in a.sent]
    assert len(sent) == 1
    (digest,) = sent
    assert digest.destination is not None and digest.destination.channel_id == "general"
    assert digest.idempotency_key == f"digest:{M}:{WEEK}"
    assert digest.files[0].filename == f"digest-{WEEK}.png"
    _png_size(digest.files[0].data)
    assert not await run_weekly_digest(M, WEEK, core=second.core)  # a week posts once
    assert await run_weekly_digest(M, "2026-W47", core=second.core)  # the next week posts


async def test_a_failed_send_releases_the_week_for_a_retry(
        make_growth: Build, redis_client: aioredis.Redis) -> None:
    growth = await make_growth(digest_channel="telegram:-100")
    with pytest.raises(UserInputError, match="telegram is not connected"):
        await run_weekly_digest(M, WEEK, core=growth.core)
    assert not await redis_client.exists(Keys(M).digest_lock(WEEK))
    adapter = ConsoleAdapter(interactive=False)
    adapter.platform = Platform.TELEGRAM
    growth.core.outbox.attach(adapter)
    assert await run_weekly_digest(M, WEEK, core=growth.core)
    assert adapter.sent[0].destination is not None
    assert adapter.sent[0].destination.channel_id == "-100"


async def test_no_channel_or_disabled_posts_nothing(make_growth: Build) -> None:
    with pytest.raises(ConfigError, match="SHOPKEEP_DIGEST_CHANNEL"):
        await make_growth(digest_channel="slack:general")
    growth = await make_growth()
    assert not await run_weekly_digest(M, WEEK, core=growth.core)
    off = await make_growth(digest_enabled=False, digest_channel="telegram:-1")
    assert not await run_weekly_digest(M, WEEK, core=off.core)
    with pytest.raises(ValueError, match="2026-W48"):
        await run_weekly_digest(M, "last week", core=(await make_growth(
            digest_channel="telegram:-1")).core)


async def test_preview_and_scheduling(make_growth: Build) -> None:
    growth = await make_growth(digest_weekday="fri", digest_hour=17, timezone="Europe/Berlin")
    (preview,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/digest preview",
                                           role=Privilege.MODERATOR))
    assert preview.private and preview.text.startswith("Weekly digest")
    _png_size(preview.files[0].data)
    scheduler = AsyncIOScheduler()
    assert schedule_digest(scheduler, growth.core, M) == f"digest:{M}"
    (job,) = scheduler.get_jobs()
    assert job.args == (M,) and job.func is run_weekly_digest
    after = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)  # a Monday
    fire = job.trigger.get_next_fire_time(None, after)
    assert (fire.isoformat(), fire.tzname()) == ("2026-11-27T17:00:00+01:00", "CET")


async def test_the_digest_runs_as_a_job_of_the_campaign_scheduler(
        make_growth: Build, redis_client: aioredis.Redis) -> None:
    from bot.campaigns import CampaignFeature

    core = (await make_growth(digest_channel="telegram:-100", digest_weekday="wed",
                              digest_hour=6)).core
    adapter = ConsoleAdapter(interactive=False)
    adapter.platform = Platform.TELEGRAM
    core.outbox.attach(adapter)
    campaigns = CampaignFeature(core)
    await campaigns.start()
    try:
        await GrowthFeature(core, campaigns).start()
        scheduler = campaigns.scheduler.scheduler
        job = scheduler.get_job("digest:default")
        assert job is not None and job.args == ("default",)
        assert job.next_run_time.weekday() == 2 and job.next_run_time.hour == 6
        # Kept in the shared Redis job store, so every process sees the same one job.
        assert "digest:default" in await redis_client.hkeys(scheduler_jobs())
        scheduler.modify_job("digest:default", next_run_time=dt.datetime.now(dt.UTC))
        scheduler.wakeup()
        for _ in range(100):
            if adapter.sent:
                break
            await asyncio.sleep(0.1)
        (digest,) = adapter.sent
        assert digest.text.startswith("Weekly digest") and digest.files
        assert scheduler.get_job("digest:default") is not None  # weekly: it stays scheduled
    finally:
        await campaigns.stop()
