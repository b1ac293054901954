"""One run, end to end on a real Redis: approval, pause, exactly-once deliveries, resume after
a crash, per-target failures, and DMs limited to opted-in segment members under a cap."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from bot.campaigns import CampaignFeature
from bot.campaigns.models import Campaign, ScheduleSpec, parse_targets
from bot.events import CommunityRef, Platform
from bot.profiles.model import Profile
from bot.tenancy import Communities
from tests.campaigns.conftest import Build, RecordingAdapter, SimulatedCrash
from tests.support.tenancy import approve

RUN = "2026-05-01T09:00:00+00:00"
TEXT = "Spring tents are in! Come and see the Trailhead 2P."


async def add_campaign(feature: CampaignFeature, name: str = "spring",
                       targets: str = "discord:chan-1,telegram:-100500", *,
                       approved: bool = True, segment: str = "", paused: bool = False,
                       auto: bool = False) -> Campaign:
    campaign = Campaign(
        merchant="default", name=name, brief="spring tents", targets=parse_targets(targets),
        schedule=ScheduleSpec("once", "2030-01-01T09:00:00+00:00", "UTC"), segment=segment,
        approved_text=TEXT if approved else "", draft_text=TEXT, paused=paused,
        auto_approve=auto, notify_platform="discord", notify_user="mod", created_at=time.time())
    await feature.repo.create(campaign)
    await approve(feature.core.store.redis, *(  # the shop's own Telegram groups
        f"telegram:{t.channel_id}" for t in campaign.targets if t.platform == Platform.TELEGRAM))
    return campaign


@pytest.fixture
def adapters() -> tuple[RecordingAdapter, RecordingAdapter]:
    return RecordingAdapter(Platform.DISCORD), RecordingAdapter(Platform.TELEGRAM)


async def test_an_approved_run_posts_once_per_target_and_logs_it(
        make_feature: Build, adapters: tuple[RecordingAdapter, RecordingAdapter]) -> None:
    discord, telegram = adapters
    feature = await make_feature([discord, telegram], start=False)
    campaign = await add_campaign(feature)
    result = await feature.runner.run(campaign.id, RUN)
    assert (result.status, result.sent, result.failed) == ("done", 2, 0)
    assert [o.text for o in discord.to("chan-1")] == [TEXT]
    assert [o.text for o in telegram.to("-100500")] == [TEXT]
    assert telegram.sent[0].idempotency_key == f"campaign:default/spring:{RUN}:telegram:-100500"
    again = await feature.runner.run(campaign.id, RUN)
    assert again.status == "already"
    assert len(discord.sent) == len(telegram.sent) == 1
    log = await feature.repo.deliveries("default", "spring", RUN)
    assert {k: (d.status, d.message_ids) for k, d in log.items()} == {
        "discord:chan-1": ("sent", ["discord-1"]), "telegram:-100500": ("sent", ["telegram-1"])}
    info = await feature.repo.run_info("default", "spring", RUN)
    assert (info["status"], info["sent"], info["total"], info["text"]) == ("done", "2", "2", TEXT)


async def test_a_run_skips_a_community_revoked_since_the_campaign_was_made(
        make_feature: Build, adapters: tuple[RecordingAdapter, RecordingAdapter]) -> None:
    discord, telegram = adapters
    feature = await make_feature([discord, telegram], start=False)
    await approve(feature.core.store.redis, "discord:guild-1")
    # The channel's server is known (a message was seen there) and approved, then revoked.
    await feature.repo.note_channel("default", "discord:chan-1", CommunityRef(
        Platform.DISCORD, "guild-1", "chan-1"))
    campaign = await add_campaign(feature)
    await Communities(feature.core.store.redis).revoke("default", "telegram:-100500")
    await Communities(feature.core.store.redis).revoke("default", "discord:guild-1")
    result = await feature.runner.run(campaign.id, RUN)
    assert (result.status, result.sent, result.skipped) == ("done", 0, 2)
    assert discord.sent == telegram.sent == []
    log = await feature.repo.deliveries("default", "spring", RUN)
    assert {d.detail for d in log.values()} == {"its community is not connected to the shop"}


async def test_unapproved_and_paused_campaigns_do_not_post(
        make_feature: Build, adapters: tuple[RecordingAdapter, RecordingAdapter]) -> None:
    discord, telegram = adapters
    feature = await make_feature([discord, telegram], start=False)
    draft_only = await add_campaign(feature, "draft-only", approved=False)
    paused = await add_campaign(feature, "paused", paused=True)
    assert (await feature.runner.run(draft_only.id, RUN)).status == "skipped"
    assert (await feature.runner.run(paused.id, RUN)).status == "skipped"
    channel_posts = [o for o in discord.sent + telegram.sent if o.destination.channel_id]
    assert channel_posts == []
    # The moderator who created the unapproved one is told, privately.
    notes = discord.to("mod")
    assert len(notes) == 1 and "no moderator approved" in notes[0].text
    info = await feature.repo.run_info("default", "paused", RUN)
    assert info["status"] == "skipped" and "paused" in info["note"]


async def test_a_crash_mid_run_resumes_only_the_missing_deliveries(make_feature: Build) -> None:
    channels = ",".join(f"discord:c{i}" for i in range(6))
    crashing = RecordingAdapter(Platform.DISCORD, crash_after=2)
    first = await make_feature([crashing], start=False, campaign_lock_ttl_s=0.5)
    campaign = await add_campaign(first, targets=channels)
    with pytest.raises(SimulatedCrash):
        await first.runner.run(campaign.id, RUN)
    assert [o.destination.channel_id for o in crashing.sent] == ["c0", "c1"]
    # The "restarted process" (a second feature on the same Redis) finishes the run.
    healthy = RecordingAdapter(Platform.DISCORD)
    second = await make_feature([healthy], start=False)
    result = await second.runner.run(campaign.id, RUN)
    assert (result.status, result.resumed) == ("done", 2)
    assert sorted(o.destination.channel_id for o in healthy.sent) == ["c2", "c3", "c4", "c5"]
    log = await second.repo.deliveries("default", "spring", RUN)
    assert all(d.status == "sent" for d in log.values()) and len(log) == 6


async def test_a_held_lock_keeps_a_second_process_out(make_feature: Build) -> None:
    adapter = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([adapter], start=False)
    campaign = await add_campaign(feature, targets="discord:c1")
    key = feature.core.store.keys("default").campaign_lock("spring", RUN)
    await feature.core.store.redis.set(key, "another-process", px=60_000)
    result = await feature.runner.run(campaign.id, RUN)
    assert result.status == "locked" and "another-process" in result.note
    assert adapter.sent == []
    assert await feature.core.store.redis.get(key) == "another-process"  # not ours to free


async def test_one_failing_target_does_not_stop_the_others(make_feature: Build) -> None:
    adapter = RecordingAdapter(Platform.DISCORD, refuse={"c2"})
    feature = await make_feature([adapter], start=False)
    campaign = await add_campaign(feature, targets="discord:c1,discord:c2,discord:c3")
    result = await feature.runner.run(campaign.id, RUN)
    assert (result.sent, result.failed) == (2, 1)
    log = await feature.repo.deliveries("default", "spring", RUN)
    assert log["discord:c2"].status == "failed" and "403" in log["discord:c2"].detail
    assert any("1 of 3 deliveries failed" in o.text for o in adapter.to("mod"))


async def test_dms_go_only_to_opted_in_segment_members_within_the_cap(
        make_feature: Build) -> None:
    telegram = RecordingAdapter(Platform.TELEGRAM)
    feature = await make_feature([telegram], start=False, campaign_dm_cap=1)
    store, now = feature.core.store, time.time()
    keys = store.keys("default")
    for member, tents in (("telegram:1", 0.9), ("telegram:2", 0.8), ("telegram:3", 0.05),
                          ("telegram:4", 0.7)):
        profile = Profile(member=member, affinity={"c:tents": tents}, messages=5,
                          first_seen=now - 1000, last_seen=now - 10, platforms={"telegram"})
        await store.redis.hset(keys.profile(member), mapping=profile.to_hash())
        await store.redis.zadd(keys.profile_index(), {member: profile.last_seen})
    # 1 and 2 and 3 opted in; 3 is not interested in tents; 4 is interested but never opted in.
    for member in ("telegram:1", "telegram:2", "telegram:3"):
        await feature.repo.set_offers("default", member, True)
    first = await add_campaign(feature, "tents-a", "dm", segment="interest:tents>0.5")
    result = await feature.runner.run(first.id, RUN)
    assert sorted(o.destination.user_id for o in telegram.sent) == ["1", "2"]
    assert result.sent == 2
    # The cap is one campaign DM a week: another campaign reaches nobody of them...
    second = await add_campaign(feature, "tents-b", "dm", segment="interest:tents>0.5")
    capped = await feature.runner.run(second.id, "2026-05-02T09:00:00+00:00")
    assert (capped.sent, capped.skipped) == (0, 2) and len(telegram.sent) == 2
    log = await feature.repo.deliveries("default", "tents-b", "2026-05-02T09:00:00+00:00")
    assert {d.detail for d in log.values()} == {"frequency cap reached"}
    # ...and a member who opts out is not written to again.
    await feature.repo.set_offers("default", "telegram:1", False)
    assert await feature.repo.all_opted_in("default") == ["telegram:2", "telegram:3"]


async def test_history_command_shows_each_delivery(
        make_feature: Build, adapters: tuple[RecordingAdapter, RecordingAdapter]) -> None:
    from tests.campaigns.conftest import say

    feature = await make_feature(list(adapters), start=False)
    campaign = await add_campaign(feature)
    await feature.runner.run(campaign.id, RUN)
    text = await say(feature, "/campaign history spring")
    assert f"{RUN}: done — 2 sent, 0 failed" in text
    assert "discord:chan-1: sent message discord-1" in text
    assert "telegram:-100500: sent message telegram-1" in text
    stamp = datetime.fromisoformat(RUN).astimezone(UTC)
    assert stamp.year == 2026


async def test_a_large_fan_out_reports_progress_and_a_summary(make_feature: Build) -> None:
    console = RecordingAdapter(Platform.CONSOLE)
    feature = await make_feature([console], start=False)
    members = [f"console:m{i}" for i in range(55)]
    for member in members:
        await feature.repo.set_offers("default", member, True)
    campaign = await add_campaign(feature, "big", "dm")
    await feature.repo.update("default", "big", notify_platform="console")
    result = await feature.runner.run(campaign.id, RUN)
    assert result.sent == 55 and len({o.destination.user_id for o in console.sent}) == 56
    info = await feature.repo.run_info("default", "big", RUN)
    assert (info["sent"], info["total"], info["status"]) == ("55", "55", "done")
    summary = console.to("mod")
    assert len(summary) == 1 and "55 sent, 0 failed, 0 skipped of 55" in summary[0].text


async def test_forget_member_drops_the_opt_in_and_pseudonymises_deliveries(
        make_feature: Build) -> None:
    telegram = RecordingAdapter(Platform.TELEGRAM)
    feature = await make_feature([telegram], start=False)
    await feature.repo.set_offers("default", "telegram:1", True)
    campaign = await add_campaign(feature, "offer", "dm")
    await feature.runner.run(campaign.id, RUN)
    await feature.forget_member("default", "telegram:1", "forgotten:abc")
    assert await feature.repo.all_opted_in("default") == []
    log = await feature.repo.deliveries("default", "offer", RUN)
    assert list(log) == ["forgotten:abc"] and log["forgotten:abc"].target == "forgotten:abc"


async def test_members_on_platforms_that_are_not_connected_are_skipped(
        make_feature: Build) -> None:
    telegram = RecordingAdapter(Platform.TELEGRAM)
    feature = await make_feature([telegram], start=False)
    for member in ("telegram:1", "discord:2"):
        await feature.repo.set_offers("default", member, True)
    campaign = await add_campaign(feature, "offer", "dm")
    result = await feature.runner.run(campaign.id, RUN)
    assert (result.sent, result.failed, result.skipped) == (1, 0, 1)
    log = await feature.repo.deliveries("default", "offer", RUN)
    assert log["discord:2"].detail == "discord is not connected"
    keys = feature.core.store.keys("default")
    assert await feature.core.store.redis.zcard(keys.campaign_dm_log("discord:2")) == 0
