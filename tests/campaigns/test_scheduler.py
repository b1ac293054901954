"""Scheduled runs through APScheduler and its Redis job store: due runs post, two schedulers
post each run once, a restart fires a due run once within the grace, pause holds runs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from bot.campaigns.scheduler import CampaignScheduler
from bot.events import Platform
from tests.campaigns.conftest import Build, RecordingAdapter, say, wait_until
from tests.campaigns.test_runner import TEXT, add_campaign
from tests.support.tenancy import approve


def soon(seconds: float) -> str:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return when.isoformat()


async def test_a_due_campaign_posts_its_approved_text_to_both_platforms(
        make_feature: Build) -> None:
    discord, telegram = RecordingAdapter(Platform.DISCORD), RecordingAdapter(Platform.TELEGRAM)
    feature = await make_feature([discord, telegram])
    await feature.repo.note_channel("default", "telegram:-100500")
    await approve(feature.core.store.redis, "telegram:-100500")  # the shop's own group
    created = await say(feature, f'/campaign create spring {soon(2)} here,telegram:-100500 '
                        '"Spring tents are here"')
    assert "Campaign spring created" in created and "Nothing posts until" in created
    await feature.repo.update("default", "spring", draft_text=TEXT)
    assert "Approved" in await say(feature, "/campaign approve spring")
    await wait_until(lambda: bool(discord.to("chan-1")) and bool(telegram.to("-100500")), 8)
    await asyncio.sleep(0.5)
    assert [o.text for o in discord.to("chan-1")] == [TEXT]
    assert [o.text for o in telegram.to("-100500")] == [TEXT]
    assert "done — 2 sent" in await say(feature, "/campaign history spring")


async def test_an_unapproved_campaign_never_posts(make_feature: Build) -> None:
    discord = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([discord])
    await say(feature, f'/campaign create quiet {soon(1)} here "Nothing to see yet"')
    await wait_until(lambda: bool(discord.to("mod")), 6)  # the moderator is told at run time
    assert discord.to("chan-1") == []
    assert "no moderator approved it" in await say(feature, "/campaign history quiet")


async def test_two_schedulers_firing_the_same_run_post_it_once(make_feature: Build) -> None:
    # Two processes whose job stores both hold the run (what APScheduler cannot rule out when
    # several schedulers share one store): both fire it at the same moment.
    adapters = [RecordingAdapter(Platform.DISCORD), RecordingAdapter(Platform.DISCORD)]
    features = [await make_feature([a], start=False) for a in adapters]
    campaign = await add_campaign(features[0], targets="discord:c1,discord:c2,discord:c3")
    schedulers = []
    for index, feature in enumerate(features):
        scheduler = CampaignScheduler(feature.core.store.url or "", feature.repo,
                                      feature.runner, poll_s=0.1,
                                      store_namespace=f":process{index}")
        await scheduler.start()
        schedulers.append(scheduler)
    try:
        when = datetime.fromisoformat(soon(1.5))
        for scheduler in schedulers:
            scheduler.schedule_run(campaign, when)
        await wait_until(lambda: all(s.results for s in schedulers), 8)
    finally:
        for scheduler in schedulers:
            await scheduler.stop()
    statuses = sorted(s.results[0][2].status for s in schedulers)
    assert statuses[0] == "done" and statuses[1] in ("already", "locked")
    posts = [o.destination.channel_id for a in adapters for o in a.sent]
    assert sorted(posts) == ["c1", "c2", "c3"]


async def test_two_processes_on_one_job_store_post_every_run_once(make_feature: Build) -> None:
    adapters = [RecordingAdapter(Platform.DISCORD), RecordingAdapter(Platform.DISCORD)]
    first = await make_feature([adapters[0]])
    second = await make_feature([adapters[1]])
    names = [f"c{i}" for i in range(5)]
    when = datetime.fromisoformat(soon(1.5))
    for name in names:
        campaign = await add_campaign(first, name, targets=f"discord:{name}")
        (first if int(name[1]) % 2 else second).scheduler.schedule_run(campaign, when)
    await wait_until(lambda: sum(len(a.sent) for a in adapters) >= 5, 8)
    await asyncio.sleep(0.8)  # give any duplicate the chance to appear
    posts = sorted(o.destination.channel_id for a in adapters for o in a.sent)
    assert posts == names


async def test_a_restart_across_the_due_time_fires_once_within_the_grace(
        make_feature: Build) -> None:
    before = RecordingAdapter(Platform.DISCORD)
    old = await make_feature([before])
    campaign = await add_campaign(old, targets="discord:c1")
    old.scheduler.schedule_run(campaign, datetime.fromisoformat(soon(1)))
    await old.stop()  # the process goes down before the run is due...
    await asyncio.sleep(2.0)  # ...and stays down past it
    after = RecordingAdapter(Platform.DISCORD)
    started = time.monotonic()
    new = await make_feature([after], campaign_misfire_grace_s=30)
    await wait_until(lambda: bool(after.sent), 5)
    await asyncio.sleep(0.5)
    assert before.sent == [] and len(after.sent) == 1
    assert time.monotonic() - started < 5
    assert new.scheduler.results[0][2].status == "done"


async def test_a_run_missed_beyond_the_grace_is_recorded_not_posted(make_feature: Build) -> None:
    # The grace is part of each stored job: every process runs with the same settings.
    old = await make_feature([RecordingAdapter(Platform.DISCORD)], campaign_misfire_grace_s=1)
    campaign = await add_campaign(old, targets="discord:c1")
    due = soon(2)  # at least a second away (soon() drops the microseconds): stopped before it
    old.scheduler.schedule_run(campaign, datetime.fromisoformat(due))
    await old.stop()
    await asyncio.sleep(3.5)
    after = RecordingAdapter(Platform.DISCORD)
    new = await make_feature([after], campaign_misfire_grace_s=1)

    async def recorded() -> str:
        return (await new.repo.run_info("default", "spring", due)).get("status", "")

    for _ in range(50):
        if await recorded() == "missed":
            break
        await asyncio.sleep(0.1)
    assert await recorded() == "missed"
    assert after.sent == []


async def test_a_paused_campaign_does_not_post_until_resumed(make_feature: Build) -> None:
    discord = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([discord])
    await say(feature, f'/campaign create later {soon(1.5)} here "A paused announcement"')
    await feature.repo.update("default", "later", draft_text=TEXT)
    await say(feature, "/campaign approve later")
    assert "paused" in await say(feature, "/campaign pause later")
    assert feature.scheduler.pending("default/later") == []
    await asyncio.sleep(2.5)
    assert discord.to("chan-1") == []
    resumed = await say(feature, "/campaign resume later")
    assert "one-time run has passed" in resumed
    assert discord.to("chan-1") == []


async def test_start_gives_a_campaign_that_lost_its_job_its_next_run(make_feature: Build) -> None:
    writer = await make_feature([RecordingAdapter(Platform.DISCORD)], start=False)
    lost = await add_campaign(writer, "lost", targets="discord:c1")  # stored, never scheduled
    due = soon(600)
    await add_campaign(writer, "recorded", targets="discord:c1")
    await writer.repo.update("default", "recorded", next_run=due)  # its job vanished in a crash
    await add_campaign(writer, "resting", targets="discord:c1", paused=True)
    process = await make_feature([RecordingAdapter(Platform.DISCORD)])
    assert process.scheduler.pending(lost.id) == [datetime.fromisoformat(
        "2030-01-01T09:00:00+00:00")]
    assert process.scheduler.pending("default/recorded") == [datetime.fromisoformat(due)]
    assert process.scheduler.pending("default/resting") == []


async def test_a_run_a_dead_process_left_half_done_is_finished_by_another(
        make_feature: Build) -> None:
    from tests.campaigns.conftest import SimulatedCrash
    from tests.campaigns.test_runner import RUN

    crashing = RecordingAdapter(Platform.DISCORD, crash_after=2)
    dead = await make_feature([crashing], start=False)
    campaign = await add_campaign(dead, targets="discord:c0,discord:c1,discord:c2,discord:c3")
    try:
        await dead.runner.run(campaign.id, RUN)
    except SimulatedCrash:
        pass
    # Another campaign's run is "running" under a live lock: a live process owns it.
    busy = await add_campaign(dead, "busy", targets="discord:c9")
    await dead.repo.record_run("default", "busy", RUN, 0.0, status="running")
    lock = dead.core.store.keys("default").campaign_lock("busy", RUN)
    await dead.core.store.redis.set(lock, "a-live-process", px=60_000)

    healthy = RecordingAdapter(Platform.DISCORD)
    alive = await make_feature([healthy])  # its start looks for unfinished runs
    await wait_until(lambda: len(healthy.sent) >= 2, 6)
    await asyncio.sleep(0.5)
    assert sorted(o.destination.channel_id for o in healthy.sent) == ["c2", "c3"]
    assert (await alive.repo.run_info("default", "spring", RUN))["status"] == "done"
    assert (await alive.repo.run_info("default", "busy", RUN))["status"] == "running"
    assert busy.id not in {r[0] for r in alive.scheduler.results}
