"""Audience expressions: parsing, helpful errors, and matching stored profiles."""

from __future__ import annotations

import time

import pytest

from bot.errors import UserInputError
from bot.profiles.segments import Segments
from bot.storage.store import Store
from tests.profiles.support import make_profile, save_profile

DAY = 86_400


def test_parse_documented_example() -> None:
    segment = Segments.parse("interest:tents>0.3 active:30d platform:telegram")
    kinds = [(t.kind, t.name, t.op, t.value) for t in segment.terms]
    assert kinds == [("interest", "tents", ">", 0.3), ("active", "", ">=", 30 * DAY),
                     ("platform", "telegram", ">=", 0.0)]
    assert segment.interests() == ["tents"]


@pytest.mark.parametrize("expr, fragment", [
    ("", "at least one term"),
    ("interest:tents>>0.3", "interest:tents>0.3"),
    ("interest:tents>3", "from 0 to 1"),
    ("active:soon", "active:30d"),
    ("platform:myspace", "platform is one of"),
    ("colour:blue", "don't understand"),
    ("messages>=lots", "messages>=5"),
    ("active:99999999d", "`active:99999999d`: the longest period is 3650d (10 years)."),
    ("idle:87601h", "the longest period is 3650d"),
    ("active:" + "9" * 400 + "d", "`active:" + "9" * 30 + "...`: the longest"),
])
def test_bad_expressions_say_how_to_fix_them(expr: str, fragment: str) -> None:
    with pytest.raises(UserInputError) as err:
        Segments.parse(expr)
    assert fragment in err.value.message


async def test_members_matching_applies_every_term(store: Store) -> None:
    now = time.time()
    await save_profile(store, "shop", make_profile(
        "telegram:1", affinity={"c:tents": 0.6}, last_seen=now - 2 * DAY))
    await save_profile(store, "shop", make_profile(  # interest too weak
        "telegram:2", affinity={"c:tents": 0.2}, last_seen=now - DAY))
    await save_profile(store, "shop", make_profile(  # wrong platform
        "discord:3", affinity={"t:tents": 0.9}, last_seen=now - DAY, platforms=("discord",)))
    await save_profile(store, "shop", make_profile(  # not active lately
        "telegram:4", affinity={"c:tents": 0.9}, last_seen=now - 90 * DAY))
    segments = Segments(store)
    expr = "interest:tents>0.3 active:30d platform:telegram"
    assert await segments.members_matching("shop", expr) == ["telegram:1"]
    assert await segments.count("shop", "interest:tents>0.3") == 3
    assert set(await segments.members_matching("shop", "-platform:telegram")) == {"discord:3"}
    assert await segments.members_matching("shop", "idle:60d") == ["telegram:4"]
    everyone = await segments.members_matching("shop", "all")
    assert everyone[-1] == "telegram:4" and len(everyone) == 4  # most recent first
    assert await segments.members_matching("shop", "messages>=4") == []


async def test_one_merchant_never_sees_another_merchants_members(store: Store) -> None:
    now = time.time()
    await save_profile(store, "shop-a", make_profile("telegram:1", affinity={"c:tents": 0.9},
                                                     last_seen=now))
    await save_profile(store, "shop-b", make_profile("telegram:2", affinity={"c:tents": 0.9},
                                                     last_seen=now))
    segments = Segments(store)
    assert await segments.members_matching("shop-a", "all") == ["telegram:1"]
    assert await segments.members_matching("shop-b", "interest:tents") == ["telegram:2"]


async def test_expired_profiles_leave_the_index(store: Store) -> None:
    now = time.time()
    await save_profile(store, "shop", make_profile("telegram:1", last_seen=now))
    await store.redis.delete(store.keys("shop").profile("telegram:1"))  # as if it expired
    segments = Segments(store)
    assert await segments.members_matching("shop", "all") == []
    assert await store.redis.zcard(store.keys("shop").profile_index()) == 0
