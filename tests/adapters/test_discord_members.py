"""Discord joins, leaves and invite links end to end: the stand-in's gateway and REST, real
discord.py, the Discord adapter and the whole App (growth feature, real Redis and model)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from adapters.discord import DiscordAdapter
from bot.app import App
from bot.events import CommunityRef, MemberRef, MembershipChange, Platform
from bot.growth import GrowthFeature
from bot.storage.keys import Keys
from lm_service.api import LMClient
from tests.adapters.conftest_discord import *  # noqa: F403  (the dc_ fixtures)
from tests.adapters.conftest_discord import DiscordRig
from tests.standins.discord_api import DiscordStandIn
from tests.standins.discord_members import GUILD_MEMBERS_INTENT
from tests.support.harness import running_app

K = Keys("default")
LINK = re.compile(r"https://discord\.gg/([\w-]+)")


async def eventually(check: Callable[[], Awaitable[object]], within: float = 10.0) -> None:
    """Poll an async condition until it is truthy, failing after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def discord_app(standin: DiscordStandIn, redis_url: str, tmp_path: Path,
                      lm: LMClient) -> AsyncIterator[tuple[App, list[MembershipChange]]]:
    """The App with the Discord adapter, started once the guild's invites have been asked
    for; yields it with the list of every MembershipChange the adapter handed the core."""
    adapter = DiscordAdapter(standin.token, api_url=standin.api_url,
                             gateway_url=standin.gateway_url, guild_ready_timeout=0.1)
    async with running_app(redis_url, tmp_path, lm, [adapter],
                           communities=[f"discord:{standin.guild_id}"]) as app:
        seen: list[MembershipChange] = []
        membership = app.membership

        async def spy(change: MembershipChange) -> None:
            seen.append(change)
            await membership(change)

        app.membership = spy  # type: ignore[method-assign]
        invites_path = f"/guilds/{standin.guild_id}/invites"
        await standin.wait_for(lambda: any(r[1] == invites_path for r in standin.requests))
        yield app, seen


async def run_invite(standin: DiscordStandIn, user: str) -> str:
    """`/invite` as a slash command in #general; returns the text the member got."""
    iid = await standin.slash(user, "invite")
    await standin.wait_for(lambda: any(s.content for s in standin.for_interaction(iid)))
    return next(s.content for s in standin.for_interaction(iid) if s.content)


def _seen(seen: list[MembershipChange], key: str, joined: bool) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(c.member.key == key and c.joined == joined for c in seen)
    return check


async def test_a_join_through_an_invite_link_made_by_slash_invite_is_a_pending_referral(
        dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
        tmp_path: Path, lm_client: LMClient) -> None:
    members = dc_standin.members
    someone_elses = members.add_invite(inviter_id="1", uses=3)
    async with discord_app(dc_standin, redis_url, tmp_path, lm_client) as (_app, seen):
        reply = await run_invite(dc_standin, "4")
        match = LINK.search(reply)
        assert match, reply
        code = await redis_client.hget(K.referral_code_of(), "discord:4")
        assert isinstance(code, str)
        [made] = members.invite_requests
        assert made.status == 200 and made.channel_id == dc_standin.general
        assert made.body == {"max_age": 0, "max_uses": 0, "temporary": False, "unique": True}
        assert made.reason is not None and f"ref_{code}" in made.reason
        assert match.group(1) in members.invites  # the link is the invite Discord made

        # Through someone's hand-made invite: nobody is credited (it was never registered).
        await members.join("20", "zed", invite=someone_elses)
        await eventually(_seen(seen, "discord:20", True))
        assert not await redis_client.exists(K.referral("discord:20"))

        # Through mia's link: only that invite's count moved since the previous join.
        await members.join("21", "nia", invite=match.group(1))
        await eventually(lambda: redis_client.exists(K.referral("discord:21")))
        record = await redis_client.hgetall(K.referral("discord:21"))
        assert record["referrer"] == "discord:4" and record["status"] == "pending"
        change = next(c for c in seen if c.member.key == "discord:21")
        assert change.community.key == f"discord:{dc_standin.guild_id}"  # as messages there
        assert change.member.display_name == "Nia"
        assert change.invite_uses_before is not None and change.invite_uses_after is not None
        assert change.invite_uses_after[match.group(1)] == 1
        assert change.invite_uses_before[someone_elses] == 4  # the snapshot was refreshed

        await members.leave("21")
        await eventually(
            lambda: _equals(redis_client.hget(K.referral("discord:21"), "status"), "withdrawn"))


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_a_refused_invite_falls_back_to_the_text_answer(
        dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
        tmp_path: Path, lm_client: LMClient, caplog: pytest.LogCaptureFixture) -> None:
    dc_standin.members.can_create_invites = False
    async with discord_app(dc_standin, redis_url, tmp_path, lm_client):
        with caplog.at_level(logging.WARNING, logger="adapters.discord.members"):
            reply = await run_invite(dc_standin, "4")
    code = await redis_client.hget(K.referral_code_of(), "discord:4")
    assert isinstance(code, str)
    assert f"Your referral code is {code}" in reply and "discord.gg" not in reply
    assert [r.status for r in dc_standin.members.invite_requests] == [403]
    assert not await redis_client.exists(K.referral_invites())
    assert "Create Invite" in caplog.text


async def test_a_rate_limited_invite_is_retried_and_still_handed_out(
        dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
        tmp_path: Path, lm_client: LMClient) -> None:
    path = f"/channels/{dc_standin.general}/invites"
    dc_standin.rate_limit("POST", path, times=1, retry_after=0.3)
    async with discord_app(dc_standin, redis_url, tmp_path, lm_client):
        reply = await run_invite(dc_standin, "5")
    match = LINK.search(reply)
    assert match, reply
    assert [s for m, p, s, _t in dc_standin.requests if m == "POST" and p == path] == [429, 200]
    assert await redis_client.hget(K.referral_invites(), f"discord:{match.group(1)}") \
        == await redis_client.hget(K.referral_code_of(), "discord:5")


async def test_bots_and_the_bot_itself_are_ignored(
        dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
        tmp_path: Path, lm_client: LMClient) -> None:
    members = dc_standin.members
    async with discord_app(dc_standin, redis_url, tmp_path, lm_client) as (_app, seen):
        link = LINK.search(await run_invite(dc_standin, "4"))
        assert link
        reads = members.invite_lists
        await members.join("30", "helperbot", bot=True)  # bots come in by OAuth2, not invites
        await members.leave("30")
        await members.join("31", "ola", invite=link.group(1))
        await eventually(lambda: redis_client.exists(K.referral("discord:31")))
        assert [c.member.key for c in seen] == ["discord:31"]
        assert members.invite_lists == reads + 1  # the bot's join read no invites
        assert not await redis_client.exists(K.referral("discord:30"))

        await members.leave(dc_standin.bot_id)
        await members.leave("31")
        await eventually(_seen(seen, "discord:31", False))
        assert [c.member.key for c in seen] == ["discord:31", "discord:31"]


async def test_without_manage_server_joins_go_without_counts_and_leaves_still_withdraw(
        dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
        tmp_path: Path, lm_client: LMClient, caplog: pytest.LogCaptureFixture) -> None:
    members = dc_standin.members
    members.can_manage_guild = False
    invite = members.add_invite(inviter_id="1")
    with caplog.at_level(logging.WARNING, logger="adapters.discord.members"):
        async with discord_app(dc_standin, redis_url, tmp_path, lm_client) as (app, seen):
            await members.join("40", "una", invite=invite)
            await eventually(_seen(seen, "discord:40", True))
            [change] = seen
            assert change.invite_uses_before is None and change.invite_uses_after is None

            assert not await redis_client.exists(K.referral("discord:40"))

            # A referral claimed with a code instead is still withdrawn on leaving.
            growth = next(f for f in app.features if isinstance(f, GrowthFeature))
            code = await growth.referrals.code_for("default", "discord:1")
            iid = await dc_standin.slash("40", "start", {"payload": f"ref_{code}"})
            await dc_standin.wait_for(
                lambda: any(s.content for s in dc_standin.for_interaction(iid)))
            assert await redis_client.hget(K.referral("discord:40"), "status") == "pending"
            await members.leave("40")
            await eventually(
                lambda: _equals(redis_client.hget(K.referral("discord:40"), "status"),
                                "withdrawn"))
    assert "Manage Server" in caplog.text
    assert caplog.text.count("cannot read the invites") == 1  # warned once, not per join


async def test_a_join_the_core_cannot_record_is_logged_and_the_next_still_arrives(
        dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
        tmp_path: Path, lm_client: LMClient, caplog: pytest.LogCaptureFixture) -> None:
    members = dc_standin.members
    async with discord_app(dc_standin, redis_url, tmp_path, lm_client) as (app, seen):
        working = app.membership

        async def failing(change: MembershipChange) -> None:
            raise ConnectionError("Redis went away")

        app.membership = failing  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="adapters.discord.members"):
            await members.join("50", "vic")
            await eventually(_logged(caplog, "could not record discord:50 joining"))
        app.membership = working  # type: ignore[method-assign]
        await members.leave("50")
        await eventually(_seen(seen, "discord:50", False))
        assert not dc_standin.sessions or all(
            s.ws is not None and not s.ws.closed for s in dc_standin.sessions.values())


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return text in caplog.text
    return check


async def test_a_refused_members_intent_falls_back_to_running_without_it(
        dc_standin: DiscordStandIn, redis_url: str, redis_client: aioredis.Redis,
        tmp_path: Path, lm_client: LMClient, caplog: pytest.LogCaptureFixture) -> None:
    dc_standin.members.members_intent_enabled = False
    with caplog.at_level(logging.WARNING, logger="adapters.discord.adapter"):
        async with discord_app(dc_standin, redis_url, tmp_path, lm_client):
            reply = await run_invite(dc_standin, "4")  # commands still work
    first, second = dc_standin.members.identify_intents
    assert first & GUILD_MEMBERS_INTENT and not second & GUILD_MEMBERS_INTENT
    assert dc_standin.identifies == 1  # the refused IDENTIFY opened no session
    assert LINK.search(reply)
    assert "Server Members intent" in caplog.text


async def test_an_invite_made_by_the_adapter_counts_from_zero_in_the_next_join(
        dc_rig: DiscordRig) -> None:
    """The adapter alone, with a host that only records: no model needed."""
    standin, host = dc_rig.standin, dc_rig.host
    await standin.wait_for(lambda: standin.members.invite_lists >= 1)
    general = CommunityRef(Platform.DISCORD, standin.guild_id, standin.general)
    link = await dc_rig.adapter.create_invite(general, "ref_abc")
    assert link is not None and link.startswith("https://discord.gg/")
    code = link.rsplit("/", 1)[-1]
    await standin.members.join("60", "wen", invite=code)
    await standin.wait_for(lambda: bool(host.changes))
    [change] = host.changes
    assert change.invite_uses_before == {code: 0} and change.invite_uses_after == {code: 1}
    # No system channel in the stand-in's guild: the guild id stands in for the channel.
    assert change.community == CommunityRef(Platform.DISCORD, standin.guild_id,
                                            standin.guild_id)
    assert change.member == MemberRef(Platform.DISCORD, "60", "Wen") and change.joined
