"""The whole bot on Discord: the App with the real language model and the demo shop, reached
through real discord.py and the stand-in — answers with sources, and /campaign by role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from adapters.discord import DiscordAdapter
from bot.app import App
from bot.knowledge.feature import KnowledgeFeature
from lm_service.api import LMClient
from tests.adapters.conftest_discord import *  # noqa: F403  (the dc_ fixtures)
from tests.knowledge.lmcache import EmbedMemo
from tests.standins.discord_api import DiscordStandIn
from tests.support.harness import running_app

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-shop"
NO_MASS_PING = {"parse": ["users"], "replied_user": False}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def dc_model(lm_client: LMClient) -> EmbedMemo:
    """The real model; each distinct text embedded once per session (the demo shop is
    imported for every test)."""
    return EmbedMemo(lm_client)


@pytest.fixture
async def dc_app(dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
                 tmp_path: Path, dc_model: EmbedMemo) -> AsyncIterator[App]:
    adapter = DiscordAdapter(dc_standin.token, api_url=dc_standin.api_url,
                             gateway_url=dc_standin.gateway_url, guild_ready_timeout=0.1)
    async with running_app(redis_url, tmp_path, dc_model, adapters=[adapter],
                           communities=[f"discord:{dc_standin.guild_id}"]) as app:
        knowledge = next(f for f in app.features if isinstance(f, KnowledgeFeature))
        await knowledge.load_demo(DEMO, "default")
        yield app


async def test_every_registry_command_syncs_as_a_valid_slash_command(
        dc_standin: DiscordStandIn, dc_app: App) -> None:
    synced = {c["name"]: c for c in dc_standin.commands[dc_standin.guild_id]}
    heads = {spec.words[0] for spec in dc_app.registry.all()}
    assert heads == set(synced)  # the stand-in rejects what Discord would
    subs = {o["name"] for o in synced["campaign"]["options"]}
    assert {"create", "list", "approve", "preview"} <= subs
    assert int(synced["campaign"]["default_member_permissions"]) == 32


async def test_mention_gets_a_grounded_answer_with_sources_and_no_mass_ping(
        dc_standin: DiscordStandIn, dc_app: App) -> None:
    asked = await dc_standin.message(
        "4", f"@everyone <@{dc_standin.bot_id}> What is your return policy?")
    await dc_standin.wait_for(lambda: bool(dc_standin.messages_in(dc_standin.general)),
                              within=90)
    replies = dc_standin.messages_in(dc_standin.general)
    assert str(replies[0].reference["message_id"]) == asked  # type: ignore[index]
    assert all(r.allowed_mentions == NO_MASS_PING for r in replies)
    text = "\n".join(r.content for r in replies)
    sources = [line for line in text.splitlines() if line.startswith("Sources: ")]
    assert sources, text
    assert "return" in sources[0].lower()  # the demo FAQ entry on returns was the ground
    answer = text.split("Sources: ")[0].strip()
    assert "60 days" in answer  # the demo shop's policy, not an invention
    assert any(ch == dc_standin.general for ch, _ in dc_standin.typing)


async def test_product_answer_carries_a_product_embed_with_its_link(
        dc_standin: DiscordStandIn, dc_app: App) -> None:
    await dc_standin.message("5", f"<@{dc_standin.bot_id}> how much is the Trailhead 2P Tent?")
    await dc_standin.wait_for(lambda: bool(dc_standin.messages_in(dc_standin.general)),
                              within=90)
    replies = dc_standin.messages_in(dc_standin.general)
    assert "$329" in replies[0].content
    assert "Sources: Trailhead 2P Tent" in replies[-1].content
    assert {"title": "Trailhead 2P Tent",
            "url": "https://trailhead.example/products/trailhead-2p-tent"}.items() <= \
        replies[-1].embeds[0].items()


async def test_member_campaign_is_refused_and_moderator_campaign_works(
        dc_standin: DiscordStandIn, dc_app: App) -> None:
    options = {"name": "spring-sale", "schedule": "every 1d", "targets": "here",
               "brief": "Spring tents are in"}
    refused = await dc_standin.slash("4", "campaign create", options)
    await dc_standin.wait_for(lambda: bool(dc_standin.for_interaction(refused)), within=30)
    refusal = dc_standin.for_interaction(refused)[-1]
    assert refusal.ephemeral and "moderators only" in refusal.content

    created = await dc_standin.slash("3", "campaign create", options)
    await dc_standin.wait_for(lambda: bool(dc_standin.for_interaction(created)), within=30)
    listed = await dc_standin.slash("3", "campaign list")
    await dc_standin.wait_for(lambda: bool(dc_standin.for_interaction(listed)), within=30)
    assert all(s.ephemeral for s in dc_standin.for_interaction(created))
    listing = dc_standin.for_interaction(listed)[-1]
    assert listing.ephemeral and "spring-sale" in listing.content


async def test_question_in_a_help_channel_thread_is_answered_without_a_mention(
        dc_standin: DiscordStandIn, dc_app: App) -> None:
    marked = await dc_standin.slash("3", "helpchannel add", channel_id=dc_standin.help)
    await dc_standin.wait_for(lambda: bool(dc_standin.for_interaction(marked)), within=30)
    await dc_standin.message("5", "nice, thanks everyone", dc_standin.thread)  # chatter
    asked = await dc_standin.message("5", "do you ship to canada?", dc_standin.thread)
    await dc_standin.wait_for(lambda: bool(dc_standin.messages_in(dc_standin.thread)),
                              within=90)
    await dc_app.router.drain()
    [reply] = dc_standin.messages_in(dc_standin.thread)
    assert str(reply.reference["message_id"]) == asked  # type: ignore[index]
    assert "Sources: " in reply.content and "canada" in reply.content.lower()
    assert dc_standin.messages_in(dc_standin.general) == []


async def test_gateway_drop_while_answering_loses_and_doubles_nothing(
        dc_standin: DiscordStandIn, dc_app: App) -> None:
    ping = f"<@{dc_standin.bot_id}>"
    await dc_standin.message("4", f"{ping} What is your return policy?")
    await dc_standin.close_gateway(code=4000)  # while the bot is still answering
    await dc_standin.message("5", f"{ping} do you ship to canada?")  # kept for the RESUME
    await dc_standin.wait_for(lambda: sum(
        "Sources: " in m.content for m in dc_standin.messages_in(dc_standin.general)) == 2,
        within=120)
    await dc_app.router.drain()
    replies = dc_standin.messages_in(dc_standin.general)
    asked = {str(r.reference["message_id"]) for r in replies if r.reference}
    assert len(asked) == 2  # each question answered, once
    assert sum("Sources: " in r.content for r in replies) == 2
    assert dc_standin.resumes == 1 and dc_standin.identifies == 1
