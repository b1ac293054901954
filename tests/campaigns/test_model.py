"""Posts written by the real model (the session `lm_client`): previews and drafts that pass
the checks and post verbatim once approved, and a generation failure that posts nothing."""

from __future__ import annotations

import pytest

from bot.campaigns.checks import numbers_in, problems
from bot.campaigns.sources import load_products
from bot.campaigns.writer import ContentWriter
from bot.demo import DEMO_DIR
from bot.events import Platform
from bot.persona import Persona, save_persona
from lm_service.api import LMClient
from tests.campaigns.conftest import Build, RecordingAdapter, load_catalog, message, say
from tests.campaigns.test_runner import RUN, add_campaign
from tests.support.tenancy import approve

pytestmark = pytest.mark.slow
TENT_LINE = ("• Trailhead 2P Tent — $329.00 — "
             "https://trailhead.example/products/trailhead-2p-tent")


async def demo_shop(feature_store: object) -> None:
    from bot.storage.store import Store

    assert isinstance(feature_store, Store)
    await load_catalog(feature_store)
    await save_persona(feature_store, "default", Persona.from_yaml(DEMO_DIR / "persona.yaml"))


async def test_preview_writes_a_checked_draft_that_approval_posts(
        make_feature: Build, lm_client: LMClient) -> None:
    discord = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([discord], lm=lm_client)
    await demo_shop(feature.core.store)
    await say(feature, '/campaign create spring "every 1d" here "Spring camping season: '
              'our two-person tent is ready for your first trip" products=TH-TENT-2P')
    preview = await say(feature, "/campaign preview spring")
    assert preview.startswith("Preview of spring (only you see this):"), preview
    assert TENT_LINE in preview
    stored = await feature.repo.get("default", "spring")
    assert stored is not None and stored.draft_text and not stored.approved
    prose = stored.draft_text.split(TENT_LINE)[0].strip()
    assert len(prose) >= 20
    catalog = await load_products(feature.core.store, "default")
    facts = numbers_in([p.description for p in catalog] + [p.name for p in catalog]
                       + ["Spring camping season: our two-person tent is ready"])
    assert problems(prose, {p.price for p in catalog}, frozenset(p.url for p in catalog),
                    facts) == []
    await say(feature, "/campaign approve spring")
    result = await feature.runner.run("default/spring", RUN)
    assert result.status == "done"
    assert [o.text for o in discord.to("chan-1")] == [stored.draft_text]


async def test_post_draft_is_private_with_buttons(make_feature: Build,
                                                  lm_client: LMClient) -> None:
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)], lm=lm_client)
    await demo_shop(feature.core.store)
    from bot.router import Router

    core = feature.core
    await approve(core.store.redis, "discord:guild-1")  # the shop's own server
    replies = await Router(core.registry, core.tenancy).handle(
        message("/post draft question tents"))  # the shortest kind: keeps the test quick
    assert len(replies) == 1
    draft = replies[0]
    assert draft.private and draft.text.startswith("Draft ")
    assert [b.label for b in draft.buttons] == ["Regenerate", "Publish here", "Schedule in 1h"]
    draft_id = draft.text.split()[1]
    stored = await feature.repo.draft("default", draft_id)
    assert stored["kind"] == "question" and stored["topic"] == "tents"
    assert draft.text.endswith(stored["text"]) and len(stored["text"]) >= 20


async def test_a_generation_failure_retries_then_tells_moderators_and_posts_nothing(
        make_feature: Build, lm_client: LMClient) -> None:
    discord = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([discord], lm=lm_client)
    await demo_shop(feature.core.store)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    # A deadline no generation can meet: the real engine answers every attempt with LMTimeout.
    writer = ContentWriter(lm_client, attempts=3, backoff_s=0.5, sleep=record, deadline_s=1e-6)
    feature.writer = feature.runner.writer = writer
    campaign = await add_campaign(feature, "auto", "discord:c1", approved=False, auto=True)
    result = await feature.runner.run(campaign.id, RUN)
    assert result.status == "failed"
    assert waits == [0.5, 1.0]
    assert discord.to("c1") == []
    told = discord.to("mod")
    assert len(told) == 1 and "could not write an acceptable post" in told[0].text
    info = await feature.repo.run_info("default", "auto", RUN)
    assert info["status"] == "failed" and "attempt 3" in info["note"]


async def test_the_whole_app_runs_a_campaign_from_the_console(
        redis_url: str, redis_client: object, tmp_path: object, lm_client: LMClient) -> None:
    import asyncio
    from pathlib import Path

    from adapters.console import ConsoleAdapter
    from bot.app import App
    from bot.events import Privilege
    from bot.settings import load_settings
    from tests.campaigns.conftest import wait_until
    from tests.campaigns.test_scheduler import soon

    assert isinstance(tmp_path, Path)
    console = ConsoleAdapter(user="mo", role=Privilege.MODERATOR, interactive=False)
    app = App(load_settings(redis_url=redis_url, data_dir=tmp_path, demo_shop=False,
                            campaign_poll_s=0.2), adapters=[console], lm=lm_client)
    await app.start()
    try:
        created = await console.say(f'/campaign create hello {soon(2)} here "Say hello"')
        assert "Campaign hello created" in created[0].text
        await console.say("/campaign edit hello text Hello from the shop!")
        await console.say("/campaign approve hello")
        await wait_until(lambda: any(o.destination is not None for o in console.sent), 8)
        await asyncio.sleep(0.3)
        posts = [o for o in console.sent if o.destination is not None]
        assert [(o.text, o.destination.channel_id) for o in posts] == [
            ("Hello from the shop!", "console")]
    finally:
        await app.stop()


async def test_an_auto_approved_run_writes_once_and_a_resumed_run_posts_the_same_text(
        make_feature: Build, lm_client: LMClient) -> None:
    from tests.campaigns.conftest import SimulatedCrash

    crashing = RecordingAdapter(Platform.DISCORD, crash_after=1)
    first = await make_feature([crashing], lm=lm_client, start=False)
    await demo_shop(first.core.store)
    campaign = await add_campaign(first, "auto", "discord:c1,discord:c2", approved=False,
                                  auto=True)
    with pytest.raises(SimulatedCrash):
        await first.runner.run(campaign.id, RUN)
    written = (await first.repo.run_info("default", "auto", RUN))["text"]
    assert [o.text for o in crashing.sent] == [written] and "\n• " in written
    healthy = RecordingAdapter(Platform.DISCORD)
    second = await make_feature([healthy], start=False)  # no model: it must not write again
    result = await second.runner.run(campaign.id, RUN)
    assert (result.status, result.resumed, result.sent) == ("done", 1, 2)
    assert [(o.destination.channel_id, o.text) for o in healthy.sent] == [("c2", written)]
