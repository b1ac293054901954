"""Content posts after drafting: edit, publish now, or schedule (a one-time campaign) — each
posted once. Drafts are seeded in Redis here; the model-backed drafting is in test_model.py."""

from __future__ import annotations

import asyncio

from bot.campaigns import CampaignFeature
from bot.events import Platform
from tests.campaigns.conftest import Build, RecordingAdapter, say, wait_until


async def seed_draft(feature: CampaignFeature, draft_id: str = "d1") -> None:
    await feature.repo.save_draft("default", draft_id, {
        "kind": "tips", "topic": "rain", "created_by": "discord:mod", "created_at": "0",
        "text": "Pitch your fly first when it rains."})


async def test_edit_then_publish_posts_once(make_feature: Build) -> None:
    discord = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([discord])
    await seed_draft(feature)
    shown = await say(feature, "/post edit d1 Keep your tent dry: pitch the fly first.")
    assert "Draft d1 (only you see this)" in shown and "pitch the fly first" in shown
    published = await say(feature, "/post publish d1 here")
    assert "Posted draft d1: 1 sent, 0 failed" in published
    assert [o.text for o in discord.to("chan-1")] == ["Keep your tent dry: pitch the fly first."]
    again = await say(feature, "/post publish d1 here")
    assert "already published" in again and len(discord.to("chan-1")) == 1
    assert "done — 1 sent" in await say(feature, "/campaign history post-d1")


async def test_schedule_makes_a_one_time_campaign(make_feature: Build) -> None:
    discord = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([discord])
    await seed_draft(feature, "d2")
    reply = await say(feature, '/post schedule d2 "in 2s" here')
    assert "will be posted once, as campaign post-d2" in reply
    assert len(feature.scheduler.pending("default/post-d2")) == 1
    await wait_until(lambda: bool(discord.to("chan-1")), 8)
    await asyncio.sleep(0.5)
    assert [o.text for o in discord.to("chan-1")] == ["Pitch your fly first when it rains."]
    assert feature.scheduler.pending("default/post-d2") == []


async def test_unknown_drafts_and_targets_are_refused(make_feature: Build) -> None:
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)])
    assert "There is no draft 'nope'" in await say(feature, "/post publish nope here")
    await seed_draft(feature, "d3")
    assert "I don't know the channel telegram:-1" in await say(
        feature, "/post publish d3 telegram:-1")
    assert "is in the past" in await say(feature, "/post schedule d3 2001-01-01T00:00 here")
    assert await feature.repo.names("default") == []
