"""A stranger invites the bot to their own Discord server (real discord.py, the stand-in, the
whole app): as its owner they get no moderator rights over the shop, nothing is answered or
learned there, and nothing of the shop changes — before and after the shop connects its own
server with `/setup CODE`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.discord import DiscordAdapter
from bot.app import App
from bot.commands.registry import ArgKind, CommandSpec
from bot.events import Privilege
from bot.router import NOT_CONNECTED
from bot.storage.keys import Keys
from bot.tenancy import Communities
from bot.tenancy.codes import SetupCodes
from lm_service.api import LMClient
from tests.adapters.conftest_discord import dc_standin  # noqa: F401  (the fixture)
from tests.standins.discord_api import DiscordStandIn, OtherGuild, Sent
from tests.support.harness import running_app
from tests.support.tenancy import snapshot

pytestmark = pytest.mark.slow

OWNER, STAFF, GUEST = "7", "8", "9"  # the stranger, their Manage Server staff, a member


def options(spec: CommandSpec) -> dict[str, Any]:
    """Values for a command's required options (Discord sends no interaction without them)."""
    values: dict[ArgKind, Any] = {ArgKind.INT: 7, ArgKind.FLOAT: 1.5, ArgKind.BOOL: True,
                                  ArgKind.MEMBER: "4", ArgKind.ATTACHMENT: "faq.csv"}
    return {a.name: a.choices[0] if a.choices else values.get(a.kind, "spring")
            for a in spec.args if a.required}


async def round_of_attacks(app: App, api: DiscordStandIn, other: OtherGuild,
                           redis: aioredis.Redis) -> list[Sent]:
    """Every moderator command as a slash command from the stranger (owner) and their staff,
    typed commands, a question and chatter; returns what the bot sent there. A member's
    /setup, refused privately, comes last; then the router drains."""
    before = await snapshot(redis)
    start = len(api.sent)
    moderator = [s for s in app.registry.all()
                 if s.privilege >= Privilege.MODERATOR and s.name != "setup"]
    interactions = [await api.slash(OWNER if i % 2 else STAFF, spec.name, options(spec),
                                    channel_id=other.general)
                    for i, spec in enumerate(moderator)]
    await api.wait_for(lambda: all(api.for_interaction(i) for i in interactions), within=60)
    for text in ('/faq add shipping "How do I pay?" "Pay by wire to evil-shop.example"',
                 "/persona set name Evil Shop", f"<@{api.bot_id}> /faq unanswered"):
        await api.message(OWNER, text, other.general)
    await api.message(GUEST, f"<@{api.bot_id}> how do I return a tent?", other.general)
    await api.message(GUEST, "tents, tents, tents: I love a good two person tent", other.general)
    sentinel = await api.slash(GUEST, "setup", channel_id=other.general)
    await api.wait_for(lambda: bool(api.for_interaction(sentinel)), within=60)
    assert "for moderators only" in api.for_interaction(sentinel)[0].content
    await app.router.drain()
    assert await snapshot(redis) == before  # nothing of the shop read into a reply, or changed
    for user in (OWNER, STAFF, GUEST):
        assert not await redis.exists(Keys("default").profile(f"discord:{user}"))
    sent = api.sent[start:]
    assert all(s.channel_id == other.general for s in sent)
    assert not [s for s in sent if s.kind == "message"]  # no answer, no post in the channel
    return [s for s in sent if s.interaction_id != sentinel]


async def test_a_strangers_server_is_never_served_before_or_after_the_shop_connects_its_own(
        dc_standin: DiscordStandIn, redis_url: str,  # noqa: F811
        redis_client: aioredis.Redis, tmp_path: Path, lm_client: LMClient) -> None:
    api = dc_standin
    adapter = DiscordAdapter(api.token, api_url=api.api_url, gateway_url=api.gateway_url,
                             guild_ready_timeout=0.1)
    async with running_app(redis_url, tmp_path, lm_client, [adapter],
                           profile_summary_interval_s=3600) as app:
        other = await api.add_guild(OWNER, {STAFF: "mod", GUEST: "member"}, "Stranger's Den")
        await api.wait_for(lambda: bool(api.commands.get(other.id)))  # joined, commands synced

        # Before the shop connected anything: one hint (to an admin), a private "not
        # connected" for every other slash command, and nothing else.
        first = await round_of_attacks(app, api, other, redis_client)
        public = [s for s in first if not s.ephemeral and s.content]  # not "thinking..."
        assert len(public) == 1 and "/setup CODE" in public[0].content
        assert {s.content for s in first if s.ephemeral and s.content} == {NOT_CONNECTED}

        # The shop's owner connects the shop's own server with a one-time code.
        code = await SetupCodes(redis_client).create("default")
        setup = await api.slash("1", "setup", {"code": code})
        await api.wait_for(lambda: bool(api.for_interaction(setup)))
        assert "Connected" in api.for_interaction(setup)[0].content
        shown = await api.slash("3", "persona show")  # Manage Server: a moderator here
        await api.wait_for(lambda: bool(api.for_interaction(shown)))
        assert "Name: " in api.for_interaction(shown)[-1].content
        await api.message("4", f"<@{api.bot_id}> how long does shipping take?")
        await api.wait_for(lambda: bool(api.messages_in(api.general)), within=120)
        await app.settle()  # the shop member's profile is stored before the snapshot

        # The stranger's server stays unconnected and silent; the hint is not repeated.
        second = await round_of_attacks(app, api, other, redis_client)
        assert second and {s.content for s in second if s.content} == {NOT_CONNECTED}
        assert all(s.ephemeral for s in second if s.content)
        assert await Communities(redis_client).approved_keys("default") == {
            f"discord:{api.guild_id}"}

        # A direct message from the stranger: a member's rights, no moderator's.
        await api.message(OWNER, "/faq list", dm=True)
        dm = api.channels[f"dm{OWNER}"]["id"]
        await api.wait_for(lambda: bool(api.messages_in(dm)))
        assert "for moderators only" in api.messages_in(dm)[0].content
