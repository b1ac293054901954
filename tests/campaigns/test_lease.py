"""The run lock is a short lease: a run whose holder died (no release, no renewal) is taken
over by another process's scheduler within about one lease, not after minutes; a live
holder keeps it by renewing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis

from bot.campaigns.lock import RunLock
from bot.campaigns.models import Campaign, ScheduleSpec, parse_targets
from bot.campaigns.runner import run_id_for
from bot.events import Platform
from tests.campaigns.conftest import Build, RecordingAdapter, wait_until
from tests.campaigns.test_scheduler import soon

LEASE_S = 1.0
POLL_S = 0.2
# How late a take-over may come after the dead holder's lease ran out: one stall check
# (= one lease here) and one poll, with room for a loaded machine. Before leases were
# watched, it came at the next minutely stall check at best (5 minutes with the old TTL).
LATE_S = LEASE_S + POLL_S + 8.0


async def _campaign(feature_repo: object, when: str,
                    targets: str = "discord:c1,discord:c2") -> Campaign:
    campaign = Campaign(
        merchant="default", name="spring", brief="spring tents",
        targets=parse_targets(targets),
        schedule=ScheduleSpec("once", when, "UTC"), approved_text="Spring tents are in.",
        created_at=time.time())
    await feature_repo.create(campaign)  # type: ignore[attr-defined]
    return campaign


async def _dead_holder(redis: aioredis.Redis, key: str) -> float:
    """A process that took the lock and died: its lease runs out, nobody renews it."""
    dead = RunLock(redis, key, LEASE_S, owner="killed-process")
    assert await dead.acquire()
    return time.monotonic() + LEASE_S


async def test_a_run_left_running_by_a_dead_holder_restarts_when_its_lease_ends(
        make_feature: Build) -> None:
    adapter = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([adapter], start=False, campaign_lock_ttl_s=LEASE_S,
                                 campaign_poll_s=POLL_S)
    run = "2026-05-01T09:00:00+00:00"
    await _campaign(feature.repo, "2030-01-01T09:00:00+00:00")
    keys = feature.core.store.keys("default")
    expires = await _dead_holder(feature.core.store.redis, keys.campaign_lock("spring", run))
    await feature.repo.record_run("default", "spring", run, 0.0, status="running",
                                  owner="killed-process")
    await feature.start()  # this process's scheduler finds the run it left
    await wait_until(lambda: len(adapter.sent) == 2, within=LEASE_S + LATE_S)
    took_over = time.monotonic()
    assert took_over >= expires - 0.05  # not before the dead holder's lease ended
    assert took_over - expires <= LATE_S
    await wait_until(lambda: bool(feature.scheduler.results), within=10)
    assert [r.status for _, _, r in feature.scheduler.results] == ["done"]


async def test_a_due_run_found_locked_is_tried_again_when_the_lease_ends(
        make_feature: Build) -> None:
    adapter = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([adapter], campaign_lock_ttl_s=LEASE_S,
                                 campaign_poll_s=POLL_S)
    due = soon(2)
    campaign = await _campaign(feature.repo, due)
    feature.scheduler.schedule_run(campaign, datetime.fromisoformat(due))
    # The holder died right after taking the lock, before it recorded anything: only the
    # "locked" answer to this process's own firing can tell it about the run.
    key = feature.core.store.keys("default").campaign_lock(
        "spring", run_id_for(datetime.fromisoformat(due)))
    redis = feature.core.store.redis
    assert await redis.set(key, "killed-process", px=3000)
    expires = time.monotonic() + 3.0
    await wait_until(lambda: any(r.status == "locked" for _, _, r in
                                 feature.scheduler.results), within=15)
    assert adapter.sent == []
    await wait_until(lambda: len(adapter.sent) == 2, within=3.0 + LATE_S)
    assert time.monotonic() >= expires - 0.05
    assert time.monotonic() - expires <= LATE_S
    statuses = [r.status for _, _, r in feature.scheduler.results]
    await wait_until(lambda: "done" in [r.status for _, _, r in feature.scheduler.results])
    assert statuses.count("done") <= 1 and len(adapter.sent) == 2


async def test_a_live_holder_keeps_its_run_by_renewing(
        make_feature: Build, redis_client: aioredis.Redis) -> None:
    # A run that takes four leases: the renewals keep the other process out all along.
    gate = asyncio.Event()

    class SlowAdapter(RecordingAdapter):
        async def send(self, outbound):  # type: ignore[no-untyped-def]
            await gate.wait()
            return await super().send(outbound)

    slow = SlowAdapter(Platform.DISCORD)
    other = RecordingAdapter(Platform.DISCORD)
    holder = await make_feature([slow], start=False, campaign_lock_ttl_s=0.5)
    rival = await make_feature([other], start=False, campaign_lock_ttl_s=0.5)
    campaign = await _campaign(holder.repo, "2030-01-01T09:00:00+00:00")
    run = datetime.now(UTC).replace(microsecond=0).isoformat()
    holding = asyncio.create_task(holder.runner.run(campaign.id, run))
    await asyncio.sleep(0.2)
    for _ in range(4):
        await asyncio.sleep(0.5)
        assert (await rival.runner.run(campaign.id, run)).status == "locked"
    gate.set()
    result = await holding
    assert (result.status, result.sent) == ("done", 2) and other.sent == []


async def test_a_holder_that_lost_its_lease_stops_posting(make_feature: Build) -> None:
    # Paused longer than its lease (a stalled machine), the holder finds another process has
    # the run: it posts nothing more, and that process carries on from the records.
    gate = asyncio.Event()

    class StalledAdapter(RecordingAdapter):
        async def send(self, outbound):  # type: ignore[no-untyped-def]
            await gate.wait()
            return await super().send(outbound)

    adapter = StalledAdapter(Platform.DISCORD)
    feature = await make_feature([adapter], start=False, campaign_lock_ttl_s=0.3)
    campaign = await _campaign(feature.repo, "2030-01-01T09:00:00+00:00",
                               "discord:c1,discord:c2,discord:c3")
    run = datetime.now(UTC).replace(microsecond=0).isoformat()
    holding = asyncio.create_task(feature.runner.run(campaign.id, run))
    key = feature.core.store.keys("default").campaign_lock("spring", run)
    redis = feature.core.store.redis
    for _ in range(100):  # until the first send is under way (stalled at the gate)
        if (await feature.repo.deliveries("default", "spring", run)).get("discord:c1"):
            break
        await asyncio.sleep(0.02)
    await redis.set(key, "the-process-that-took-over", px=10_000)
    await asyncio.sleep(0.4)  # a heartbeat finds the lease gone
    gate.set()
    result = await holding
    assert result.status == "lost" and result.sent == 1
    assert [o.destination.channel_id for o in adapter.sent] == ["c1"]
    assert await redis.get(key) == "the-process-that-took-over"  # not freed by the loser

