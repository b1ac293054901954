"""Starting the Discord adapter from settings: endpoints, merchant-named moderator roles,
sharding, a bad token, and sends that are not replies (the outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest

from adapters.discord import DiscordAdapter
from adapters.discord.endpoints import current_endpoints
from bot.commands.registry import CommandContext, CommandSpec
from bot.events import Destination, Outbound, OutboundFile, Platform
from bot.settings import load_settings
from tests.adapters.conftest_discord import *  # noqa: F403  (the dc_ fixtures)
from tests.adapters.conftest_discord import CoreHost
from tests.standins.discord_api import DiscordStandIn


@pytest.fixture
async def dc_started() -> AsyncIterator[list[DiscordAdapter]]:
    """Adapters a test starts; stopped afterwards even when the test fails."""
    started: list[DiscordAdapter] = []
    yield started
    for adapter in started:
        await adapter.stop()


def _settings(standin: DiscordStandIn, **extra: object):  # type: ignore[no-untyped-def]
    return load_settings(discord_token=standin.token, discord_api_url=standin.api_url,
                         discord_gateway_url=standin.gateway_url, **extra)


async def test_from_settings_points_discord_py_at_the_configured_endpoints(
        dc_standin: DiscordStandIn, dc_host: CoreHost,
        dc_started: list[DiscordAdapter]) -> None:
    adapter = DiscordAdapter.from_settings(_settings(dc_standin))
    assert current_endpoints() == (dc_standin.api_url, dc_standin.gateway_url)
    await adapter.start(dc_host)
    dc_started.append(adapter)
    assert dc_standin.identifies == 1
    assert dc_standin.guild_id in dc_standin.commands
    assert isinstance(adapter.client, discord.Client)
    assert not isinstance(adapter.client, discord.AutoShardedClient)


@pytest.mark.parametrize("roles, allowed", [((), False), (("Helpers",), True)])
async def test_merchant_configured_role_makes_a_moderator(
        dc_standin: DiscordStandIn, dc_host: CoreHost, dc_started: list[DiscordAdapter],
        roles: tuple[str, ...], allowed: bool) -> None:
    adapter = DiscordAdapter.from_settings(_settings(dc_standin,
                                                     discord_moderator_roles=list(roles)))
    await adapter.start(dc_host)
    dc_started.append(adapter)
    iid = await dc_standin.slash("6", "helpchannel add", channel_id=dc_standin.help)
    await dc_standin.wait_for(lambda: bool(dc_standin.for_interaction(iid)))
    reply = dc_standin.for_interaction(iid)[0].content
    assert ("I'll answer questions in this channel" in reply) is allowed
    assert ("moderators only" in reply) is not allowed


async def test_sharded_client_identifies_each_shard_and_serves_the_guild(
        dc_standin: DiscordStandIn, dc_host: CoreHost,
        dc_started: list[DiscordAdapter]) -> None:
    adapter = DiscordAdapter.from_settings(_settings(dc_standin, discord_shards=2))
    await adapter.start(dc_host)
    dc_started.append(adapter)
    assert isinstance(adapter.client, discord.AutoShardedClient)
    assert dc_standin.identifies == 2
    assert sorted(s.shard for s in dc_standin.sessions.values()) == [(0, 2), (1, 2)]
    await dc_standin.message("4", f"<@{dc_standin.bot_id}> /help")
    await dc_standin.wait_for(lambda: bool(dc_standin.messages_in(dc_standin.general)))
    assert "Commands you can run" in dc_standin.messages_in(dc_standin.general)[0].content


async def test_bad_token_fails_start_with_login_failure(
        dc_standin: DiscordStandIn, dc_host: CoreHost,
        dc_started: list[DiscordAdapter]) -> None:
    adapter = DiscordAdapter("wrong-token", api_url=dc_standin.api_url,
                             gateway_url=dc_standin.gateway_url)
    dc_started.append(adapter)
    with pytest.raises(discord.LoginFailure):
        await adapter.start(dc_host)
    assert dc_standin.identifies == 0


async def test_outbox_sends_to_a_channel_and_to_a_members_direct_messages(
        dc_rig) -> None:  # type: ignore[no-untyped-def]
    standin = dc_rig.standin
    ids = await dc_rig.adapter.send(Outbound(
        "Spring sale starts today!", idempotency_key="campaign:spring:1",
        files=(OutboundFile("sales.csv", b"day,orders\nmon,3\n", "text/csv"),),
        destination=Destination(Platform.DISCORD, channel_id=standin.general)))
    again = await dc_rig.adapter.send(Outbound(
        "Spring sale starts today!", idempotency_key="campaign:spring:1",
        destination=Destination(Platform.DISCORD, channel_id=standin.general)))
    assert ids == again  # same idempotency key: Discord returns the first message
    [posted] = standin.messages_in(standin.general)
    assert posted.files == ["sales.csv"] and posted.content == "Spring sale starts today!"

    dm_ids = await dc_rig.adapter.send(Outbound(
        "Your order shipped.", destination=Destination(Platform.DISCORD, user_id="5")))
    [dm] = [s for s in standin.sent if s.channel_id == standin.channels["dm5"]["id"]]
    assert dm_ids == [dm.id] and dm.content == "Your order shipped."


async def test_restart_does_not_resync_unchanged_commands(
        dc_standin: DiscordStandIn, dc_host: CoreHost,
        dc_started: list[DiscordAdapter]) -> None:
    def puts() -> int:
        return sum(1 for m, p, _, _ in dc_standin.requests
                   if m == "PUT" and p.endswith(f"/guilds/{dc_standin.guild_id}/commands"))

    for _ in range(2):
        adapter = DiscordAdapter(dc_standin.token, api_url=dc_standin.api_url,
                                 gateway_url=dc_standin.gateway_url, guild_ready_timeout=0.1)
        await adapter.start(dc_host)
        await adapter.stop()
    assert puts() == 1

    dc_host.registry.register(CommandSpec("ping", "Say pong.", _pong))
    adapter = DiscordAdapter(dc_standin.token, api_url=dc_standin.api_url,
                             gateway_url=dc_standin.gateway_url, guild_ready_timeout=0.1)
    await adapter.start(dc_host)
    dc_started.append(adapter)
    assert puts() == 2
    assert "ping" in {c["name"] for c in dc_standin.commands[dc_standin.guild_id]}


async def _pong(ctx: CommandContext) -> str:
    return "pong"


async def test_heartbeats_are_sent_and_acked(
        dc_host: CoreHost, dc_started: list[DiscordAdapter]) -> None:
    standin = DiscordStandIn(heartbeat_interval_ms=200)
    await standin.start()
    try:
        adapter = DiscordAdapter(standin.token, api_url=standin.api_url,
                                 gateway_url=standin.gateway_url, guild_ready_timeout=0.1)
        await adapter.start(dc_host)
        dc_started.append(adapter)
        await standin.wait_for(lambda: standin.heartbeats >= 3)
        assert adapter.client.latency < 1.0  # measured from our ACKs: they arrived
        assert standin.resumes == 0 and standin.identifies == 1
    finally:
        for adapter in dc_started:
            await adapter.stop()
        dc_started.clear()
        await standin.stop()
