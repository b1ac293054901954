"""Joins and leaves that adapters report reach referrals through `App.membership`, and
`/invite` hands out a platform invite link where the adapter can make one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import redis.asyncio as aioredis

from bot.events import CommunityRef, Inbound, MemberRef, MembershipChange, Outbound, Platform
from bot.growth import GrowthFeature
from bot.growth.periods import DAY_S
from bot.ports import Adapter, AdapterHost, Capabilities
from bot.storage.keys import Keys
from lm_service.api import LMClient
from tests.support.harness import running_app
from tests.support.tenancy import approve

M = "default"
T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC).timestamp()
GUILD = CommunityRef(Platform.DISCORD, "g1", "general")


class InvitingEdge(Adapter):
    """The platform edge only: makes numbered invite links and records what it was asked."""

    platform = Platform.DISCORD
    capabilities = Capabilities(max_message_length=2000)

    def __init__(self) -> None:
        self.invites: list[tuple[str, str]] = []

    async def start(self, host: AdapterHost) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, outbound: Outbound) -> list[str]:
        return []

    async def create_invite(self, community: CommunityRef, name: str) -> str | None:
        self.invites.append((community.key, name))
        return f"https://discord.gg/inv{len(self.invites)}"


def _change(user: str, joined: bool, at: float, **extra: object) -> MembershipChange:
    return MembershipChange(platform=Platform.DISCORD, member=MemberRef(Platform.DISCORD, user),
                            community=GUILD, joined=joined, at=at, **extra)  # type: ignore[arg-type]


def _growth(app: object) -> GrowthFeature:
    return next(f for f in app.features if isinstance(f, GrowthFeature))  # type: ignore[attr-defined]


async def test_invite_link_from_the_adapter_attributes_the_join_and_leaving_withdraws_it(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    edge = InvitingEdge()
    async with running_app(redis_url, tmp_path, lm_client, [edge]) as app:
        await approve(app.store.redis, GUILD.key)
        [reply] = await app.handle(Inbound(
            platform=Platform.DISCORD, member=MemberRef(Platform.DISCORD, "1", "Alice"),
            text="/invite", community=GUILD))
        assert "https://discord.gg/inv1" in reply.text
        code = await _growth(app).referrals.code_for(M, "discord:1")
        assert edge.invites == [("discord:g1", f"ref_{code}")]

        # Counts before and after the join: only inv1 moved, so Alice invited Bob.
        await app.membership(_change("2", True, T0, invite_uses_before={"inv1": 0, "x": 4},
                                     invite_uses_after={"inv1": 1, "x": 4}))
        record = await redis_client.hgetall(Keys(M).referral("discord:2"))
        assert record["referrer"] == "discord:1" and record["status"] == "pending"

        await app.membership(_change("2", False, T0 + DAY_S))
        assert await redis_client.hget(Keys(M).referral("discord:2"), "status") == "withdrawn"


async def test_a_named_invite_link_names_the_referrer_and_unknown_invites_attribute_nobody(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    async with running_app(redis_url, tmp_path, lm_client) as app:
        await approve(app.store.redis, GUILD.key)
        code = await _growth(app).referrals.code_for(M, "discord:1")
        await app.membership(_change("3", True, T0, invite=f"ref_{code}"))
        await app.membership(_change("4", True, T0, invite="https://discord.gg/someoneelse"))
        await app.membership(_change("5", True, T0))
    assert await redis_client.hget(Keys(M).referral("discord:3"), "referrer") == "discord:1"
    assert not await redis_client.exists(Keys(M).referral("discord:4"))
    assert not await redis_client.exists(Keys(M).referral("discord:5"))
