"""Account linking: one-time codes, and a linked member ends up with one merged profile."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis.asyncio as aioredis

from bot.errors import UserInputError
from bot.events import Platform
from bot.growth import GrowthFeature, canonical_member
from bot.growth.linking import merge_profiles
from bot.profiles.model import Profile
from bot.storage.keys import Keys
from tests.growth.conftest import Build, inbound, say

M = "default"
TG, DC = "telegram:10", "discord:20"


def _profile(member: str, vector: list[float], affinity: dict[str, float], messages: int,
             first: float, last: float, platform: str) -> Profile:
    v = np.asarray(vector, dtype=np.float32)
    return Profile(member=member, vector=v / np.linalg.norm(v), affinity=affinity,
                   messages=messages, on_topic=messages // 2, first_seen=first, last_seen=last,
                   platforms={platform}, communities={f"{platform}:c"}, bought={f"SKU-{member}"},
                   recent=[f"said on {platform}"], summary=f"{platform} summary")


async def test_link_with_a_code_gives_one_member_and_one_merged_profile(
        growth: GrowthFeature, redis_client: aioredis.Redis) -> None:
    keys = Keys(M)
    telegram = _profile(TG, [1, 0, 0], {"c:tents": 0.8, "t:ultralight": 0.3}, 10, 100, 500,
                        "telegram")
    discord = _profile(DC, [0, 1, 0], {"c:tents": 0.4, "c:stoves": 0.6}, 30, 50, 900,
                       "discord")
    await redis_client.hset(keys.profile(TG), mapping=telegram.to_hash())
    await redis_client.hset(keys.profile(DC), mapping=discord.to_hash())
    await redis_client.zadd(keys.profile_index(), {TG: 500, DC: 900})

    (issued,) = await say(growth, inbound(Platform.TELEGRAM, "10", "/link", community=None))
    code = issued.text.split("code is ")[1].split(".")[0]
    assert issued.private and len(code) == 8
    (linked,) = await say(growth, inbound(Platform.DISCORD, "20", f"/link {code.lower()}"))
    assert linked.text.startswith("Linked!") and TG in linked.text and DC in linked.text

    assert await canonical_member(redis_client, M, DC) == TG
    assert await canonical_member(redis_client, M, TG) == TG
    assert not await redis_client.exists(keys.profile(DC))
    merged = Profile.from_hash(TG, await redis_client.hgetall(keys.profile(TG)))
    assert merged.messages == 40 and merged.on_topic == 20
    assert merged.affinity == {"c:tents": 0.8, "c:stoves": 0.6, "t:ultralight": 0.3}
    assert (merged.first_seen, merged.last_seen) == (50, 900)
    assert merged.platforms == {"telegram", "discord"}
    assert merged.bought == {f"SKU-{TG}", f"SKU-{DC}"}
    assert merged.recent == ["said on telegram", "said on discord"]
    assert merged.vector is not None
    # Weighted by messages: the Discord side (30 messages) pulls three times harder.
    assert merged.vector[1] == pytest.approx(3 * merged.vector[0], rel=0.01)
    assert await redis_client.zrange(keys.profile_index(), 0, -1) == [TG]


async def test_codes_work_once_and_expire(make_growth: Build,
                                          redis_client: aioredis.Redis) -> None:
    growth = await make_growth(link_code_ttl_s=30)
    linking = growth.linking
    code = await linking.issue(M, TG)
    assert 25 <= await redis_client.ttl(Keys(M).link_code(code)) <= 30
    results = await asyncio.gather(linking.redeem(M, DC, code), linking.redeem(M, DC, code),
                                   return_exceptions=True)
    assert sum(isinstance(r, UserInputError) for r in results) == 1
    stale = await linking.issue(M, "telegram:11")
    await redis_client.pexpire(Keys(M).link_code(stale), 50)
    await asyncio.sleep(0.2)
    with pytest.raises(UserInputError, match="unknown, expired or already used"):
        await linking.redeem(M, "discord:21", stale)
    assert await canonical_member(redis_client, M, "discord:21") == "discord:21"


async def test_refuses_same_account_same_platform_and_relinking(growth: GrowthFeature) -> None:
    linking = growth.linking
    with pytest.raises(UserInputError, match="other"):
        await linking.redeem(M, TG, await linking.issue(M, TG))
    with pytest.raises(UserInputError, match="Only one telegram account"):
        await linking.redeem(M, "telegram:11", await linking.issue(M, TG))
    await linking.redeem(M, DC, await linking.issue(M, TG))
    with pytest.raises(UserInputError, match="already linked"):
        await linking.redeem(M, TG, await linking.issue(M, DC))
    # A third platform joins the same person.
    result = await linking.redeem(M, "console:30", await linking.issue(M, DC))
    assert result.person == TG and result.accounts == ("console:30", DC, TG)
    (reply,) = await say(growth, inbound(Platform.TELEGRAM, "10", "/link NOPE1234"))
    assert "unknown, expired or already used" in reply.text


def test_merging_into_an_empty_profile_keeps_everything() -> None:
    only = _profile(DC, [0, 0, 1], {"c:packs": 0.5}, 4, 10, 20, "discord")
    merged = merge_profiles(Profile(member=TG), only)
    assert merged.member == TG and merged.messages == 4 and merged.affinity == {"c:packs": 0.5}
    assert merged.vector is not None and merged.vector[2] == pytest.approx(1.0, abs=1e-3)
    assert merged.first_seen == 10
