"""Referrals: the stay rule, early-leave withdrawal, fraud checks, leaderboards and CSV."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io

import redis.asyncio as aioredis

from bot.events import Platform, Privilege
from bot.growth import GrowthFeature
from bot.growth.periods import DAY_S
from bot.growth.referrals import (
    Referrals,
    attribute_invite_uses,
    invite_text,
    parse_start_payload,
)
from bot.storage.keys import Keys
from tests.growth.conftest import Build, inbound, say

M = "default"
T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC).timestamp()  # a Monday noon
ALICE, BOB, CARL = "telegram:1", "telegram:2", "discord:3"


async def _message(growth: GrowthFeature, member_key: str, ts: float) -> None:
    platform, _, user = member_key.partition(":")
    await growth.observe(inbound(Platform(platform), user, "hello there", ts=ts), M)


async def _status(redis: aioredis.Redis, invitee: str) -> str:
    return str(await redis.hget(Keys(M).referral(invitee), "status"))


async def test_credited_only_once_stay_and_messages_rules_are_met(
        make_growth: Build, redis_client: aioredis.Redis) -> None:
    growth = await make_growth(referral_stay_days=7, referral_min_messages=3)
    code = await growth.referrals.code_for(M, ALICE, "Alice")
    outcome = await growth.member_joined(M, BOB, code, ts=T0)
    assert outcome.attributed and outcome.referrer == ALICE
    await _message(growth, BOB, T0 + 3600)
    await _message(growth, BOB, T0 + DAY_S)
    # Stayed long enough, but only two messages: not yet.
    assert await growth.referrals.settle(M, T0 + 10 * DAY_S) == 0
    assert await growth.referrals.leaderboard(M, T0 + 10 * DAY_S, "all") == []
    await _message(growth, BOB, T0 + 10 * DAY_S)  # the third message meets the rule
    assert await _status(redis_client, BOB) == "credited"
    record = await redis_client.hgetall(Keys(M).referral(BOB))
    assert float(record["credited_at"]) == T0 + 10 * DAY_S
    assert await growth.referrals.leaderboard(M, T0 + 10 * DAY_S, "all") == [
        (ALICE, "Alice", 1)]
    report = await growth.stats(M, days=30, now=T0 + 10 * DAY_S)
    assert report.counts["telegram"]["ref_joined"] == 1
    assert report.counts["telegram"]["ref_credited"] == 1
    assert report.daily[-1][3] == 1  # credited on the day the rule was met


async def test_credit_lands_when_the_stay_ends_not_when_it_is_noticed(
        make_growth: Build, redis_client: aioredis.Redis) -> None:
    growth = await make_growth(referral_stay_days=7, referral_min_messages=2)
    code = await growth.referrals.code_for(M, ALICE)
    await growth.member_joined(M, BOB, code, ts=T0)
    await _message(growth, BOB, T0 + 60)
    await _message(growth, BOB, T0 + 120)
    assert await growth.referrals.settle(M, T0 + 7 * DAY_S - 1) == 0
    assert await _status(redis_client, BOB) == "pending"
    assert await growth.referrals.settle(M, T0 + 30 * DAY_S) == 1
    record = await redis_client.hgetall(Keys(M).referral(BOB))
    assert float(record["credited_at"]) == T0 + 7 * DAY_S


async def test_leaving_before_the_stay_withdraws_the_referral(
        make_growth: Build, redis_client: aioredis.Redis) -> None:
    growth = await make_growth(referral_stay_days=7, referral_min_messages=1)
    code = await growth.referrals.code_for(M, ALICE)
    await growth.member_joined(M, BOB, code, ts=T0)
    await _message(growth, BOB, T0 + 60)
    assert await growth.member_left(M, BOB, ts=T0 + 3 * DAY_S) == "withdrawn"
    assert await growth.referrals.settle(M, T0 + 30 * DAY_S) == 0
    assert await growth.referrals.leaderboard(M, T0 + 30 * DAY_S, "all") == []
    # Farming by leaving and joining again with the same code is refused.
    again = await growth.member_joined(M, BOB, code, ts=T0 + 4 * DAY_S)
    assert again.status == "already_attributed"
    report = await growth.stats(M, days=7, now=T0 + 3 * DAY_S)
    assert report.counts["all"]["ref_withdrawn"] == 1
    assert report.counts["all"]["ref_credited"] == 0


async def test_leaving_after_the_rule_was_met_keeps_the_credit(
        make_growth: Build, redis_client: aioredis.Redis) -> None:
    growth = await make_growth(referral_stay_days=2, referral_min_messages=1)
    code = await growth.referrals.code_for(M, ALICE)
    await growth.member_joined(M, BOB, code, ts=T0)
    await _message(growth, BOB, T0 + 60)
    # Nobody settled in between: leaving on day 5 still finds the rule met on day 2.
    assert await growth.member_left(M, BOB, ts=T0 + 5 * DAY_S) == "credited"
    assert await growth.referrals.leaderboard(M, T0 + 5 * DAY_S, "all") == [(ALICE, ALICE, 1)]


async def test_fraud_checks_refuse_self_existing_and_unknown(growth: GrowthFeature) -> None:
    code = await growth.referrals.code_for(M, ALICE)
    assert (await growth.member_joined(M, ALICE, code, ts=T0)).status == "self"
    await _message(growth, CARL, T0 - DAY_S)  # Carl was here before the invite
    assert (await growth.member_joined(M, CARL, code, ts=T0)).status == "already_member"
    assert (await growth.member_joined(M, BOB, "nosuchcode", ts=T0)).status == "unknown_code"
    assert (await growth.member_joined(M, BOB, None, ts=T0)).status == "no_code"
    # Alice's own Discord account, once linked, is Alice: no credit for inviting herself.
    link = await growth.linking.issue(M, ALICE)
    await growth.linking.redeem(M, "discord:99", link)
    assert (await growth.member_joined(M, "discord:99", code, ts=T0)).status == "self"


async def test_two_processes_settling_at_once_credit_once(
        make_growth: Build, redis_client: aioredis.Redis) -> None:
    first = await make_growth(referral_stay_days=1, referral_min_messages=0)
    second = await make_growth(referral_stay_days=1, referral_min_messages=0)
    code = await first.referrals.code_for(M, ALICE)
    for n in range(20):
        await first.member_joined(M, f"telegram:{100 + n}", code, ts=T0)
    results = await asyncio.gather(*(g.referrals.settle(M, T0 + 2 * DAY_S)
                                     for g in (first, second, first, second)))
    assert sum(results) == 20
    assert await first.referrals.leaderboard(M, T0 + 2 * DAY_S, "all") == [(ALICE, ALICE, 20)]


async def test_leaderboard_this_month_and_all_time(growth: GrowthFeature) -> None:
    growth.settings.referral_min_messages = 0
    growth.settings.referral_stay_days = 0
    alice = await growth.referrals.code_for(M, ALICE, "Alice")
    carl = await growth.referrals.code_for(M, CARL, "Carl")
    october = dt.datetime(2026, 10, 10, tzinfo=dt.UTC).timestamp()
    for n in range(3):
        await growth.member_joined(M, f"telegram:{200 + n}", alice, ts=october)
    for n in range(2):
        await growth.member_joined(M, f"discord:{300 + n}", carl, ts=T0)
    await growth.member_joined(M, "telegram:400", alice, ts=T0)
    now = T0 + DAY_S
    assert await growth.referrals.leaderboard(M, now, "month") == [
        (CARL, "Carl", 2), (ALICE, "Alice", 1)]
    assert await growth.referrals.leaderboard(M, now, "all") == [
        (ALICE, "Alice", 4), (CARL, "Carl", 2)]
    member = inbound(Platform.TELEGRAM, "5", "/leaderboard all")
    (reply,) = await say(growth, member)
    assert reply.text.splitlines()[1:] == ["1. Alice — 4", "2. Carl — 2"]


async def test_moderators_export_every_referral_as_csv(growth: GrowthFeature) -> None:
    growth.settings.referral_min_messages = 0
    code = await growth.referrals.code_for(M, ALICE)
    await growth.member_joined(M, BOB, code, ts=T0)
    await growth.member_joined(M, CARL, code, ts=T0 + 60)
    await growth.member_left(M, CARL, ts=T0 + 120)
    member = await say(growth, inbound(Platform.TELEGRAM, "1", "/referrals export"))
    assert "moderator" in member[0].text and not member[0].files
    (reply,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/referrals export",
                                         role=Privilege.MODERATOR))
    assert reply.private and reply.files[0].filename == "referrals.csv"
    rows = list(csv.DictReader(io.StringIO(reply.files[0].data.decode())))
    # The export settles first: by now Bob has stayed the 7 days; Carl left after 2 minutes.
    assert [(r["invitee"], r["referrer"], r["status"]) for r in rows] == [
        (BOB, ALICE, "credited"), (CARL, ALICE, "withdrawn")]
    assert rows[0]["joined_at"] == "2026-11-02T12:00:00+00:00"
    assert rows[0]["credited_at"] == "2026-11-09T12:00:00+00:00"
    assert rows[1]["left_at"] == "2026-11-02T12:02:00+00:00"


async def test_start_deep_link_attributes_the_join(growth: GrowthFeature,
                                                   redis_client: aioredis.Redis) -> None:
    code = await growth.referrals.code_for(M, ALICE)
    (reply,) = await say(growth, inbound(Platform.TELEGRAM, "2", f"/start ref_{code}",
                                         community=None))
    assert "friend's invite" in reply.text
    assert await _status(redis_client, BOB) == "pending"
    (plain,) = await say(growth, inbound(Platform.TELEGRAM, "7", "/start", community=None))
    assert "/help" in plain.text


async def test_invite_gives_a_personal_link_per_platform(make_growth: Build) -> None:
    growth = await make_growth(referral_telegram_bot="@ShopkeepDemoBot",
                               referral_discord_invite="abcDEF")
    (tg,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/invite"))
    code = await growth.referrals.code_for(M, ALICE)
    assert f"https://t.me/ShopkeepDemoBot?start=ref_{code}" in tg.text and tg.private
    (again,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/invite"))
    assert again.text == tg.text  # one code per member
    (dc,) = await say(growth, inbound(Platform.DISCORD, "3", "/invite"))
    carl = await growth.referrals.code_for(M, CARL)
    assert "https://discord.gg/abcDEF" in dc.text and f"/start ref_{carl}" in dc.text
    assert carl != code
    (console,) = await say(growth, inbound(Platform.CONSOLE, "me", "/invite"))
    assert "Discord and Telegram" in console.text
    assert "t.me" not in invite_text("telegram", code, None, None)


def test_start_payload_and_discord_invite_attribution() -> None:
    assert parse_start_payload("ref_AbC123") == "abc123"
    assert parse_start_payload("ref_") is None
    assert parse_start_payload("hello") is None
    assert parse_start_payload(None) is None
    assert attribute_invite_uses({"a": 1, "b": 4}, {"a": 2, "b": 4}) == "a"
    assert attribute_invite_uses({"a": 1}, {"a": 1, "new": 1}) == "new"
    # Two joins overlapping: unknowable, so no attribution rather than a wrong one.
    assert attribute_invite_uses({"a": 1, "b": 4}, {"a": 2, "b": 5}) is None
    assert attribute_invite_uses({"a": 1}, {"a": 3}) is None


async def test_codes_are_unique_per_member_even_when_made_concurrently(
        growth: GrowthFeature, redis_client: aioredis.Redis) -> None:
    referrals: Referrals = growth.referrals
    codes = await asyncio.gather(*(referrals.code_for(M, ALICE) for _ in range(10)))
    assert len(set(codes)) == 1
    assert await redis_client.hlen(Keys(M).referral_codes()) == 1


async def test_forgetting_a_member_keeps_counts_but_not_their_key(
        growth: GrowthFeature, redis_client: aioredis.Redis) -> None:
    growth.settings.referral_min_messages = 0
    growth.settings.referral_stay_days = 0
    code = await growth.referrals.code_for(M, ALICE, "Alice")
    await growth.member_joined(M, BOB, code, ts=T0)
    await _message(growth, ALICE, T0)
    await _message(growth, CARL, T0)
    await growth.linking.redeem(M, "discord:1", await growth.linking.issue(M, ALICE))
    pending_code = await growth.linking.issue(M, ALICE)
    before = await growth.stats(M, days=1, now=T0)
    await growth.forget_member(M, ALICE, "forgotten:abc")
    keys = Keys(M)
    assert await growth.referrals.leaderboard(M, T0, "all") == [
        ("forgotten:abc", "forgotten:abc", 1)]
    assert await redis_client.hget(keys.referral(BOB), "referrer") == "forgotten:abc"
    assert await redis_client.hlen(keys.referral_codes()) == 0
    assert (await growth.member_joined(M, "telegram:77", code, ts=T0)).status == "unknown_code"
    assert not await redis_client.exists(keys.link_code(pending_code))
    assert await redis_client.hgetall(keys.identity()) == {}
    after = await growth.stats(M, days=1, now=T0)
    assert after.active == before.active
    every_key = [k async for k in redis_client.scan_iter(match=keys.pattern())]
    for key in every_key:
        kind = await redis_client.type(key)
        dump = (str(await redis_client.hgetall(key)) if kind == "hash" else
                str(await redis_client.smembers(key)) if kind == "set" else
                str(await redis_client.zrange(key, 0, -1)) if kind == "zset" else
                str(await redis_client.get(key)))
        assert ALICE not in key and ALICE not in dump, key


async def test_a_linked_referrer_is_one_line_on_the_board(growth: GrowthFeature) -> None:
    growth.settings.referral_min_messages = 0
    growth.settings.referral_stay_days = 0
    on_telegram = await growth.referrals.code_for(M, ALICE, "Alice")
    on_discord = await growth.referrals.code_for(M, CARL, "Carl")
    await growth.member_joined(M, "telegram:500", on_telegram, ts=T0)
    await growth.member_joined(M, "discord:501", on_discord, ts=T0)
    await growth.referrals.settle(M, T0)
    (issued,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/link", community=None))
    code = issued.text.split("code is ")[1].split(".")[0]
    await say(growth, inbound(Platform.DISCORD, "3", f"/link {code}", community=None))
    await growth.member_joined(M, "discord:502", on_discord, ts=T0)
    assert await growth.referrals.leaderboard(M, T0, "all") == [(ALICE, "Alice", 3)]


async def test_discord_joins_are_attributed_from_invite_use_counts(
        growth: GrowthFeature, redis_client: aioredis.Redis) -> None:
    code = await growth.referrals.register_invite(M, "discord", "AbCd12", CARL)
    assert code == await growth.referrals.code_for(M, CARL)
    await growth.referrals.register_invite(M, "discord", "Other9", ALICE)
    outcome = await growth.member_joined_via_invite(
        M, "discord:600", {"AbCd12": 3, "Other9": 1, "public": 40},
        {"AbCd12": 4, "Other9": 1, "public": 40}, ts=T0)
    assert outcome.attributed and outcome.referrer == CARL
    # The shared server invite is no one's referral; overlapping joins are left unattributed.
    public = await growth.member_joined_via_invite(
        M, "discord:601", {"public": 40}, {"public": 41}, ts=T0)
    assert public.status == "no_code"
    overlap = await growth.member_joined_via_invite(
        M, "discord:602", {"AbCd12": 4, "Other9": 1}, {"AbCd12": 5, "Other9": 2}, ts=T0)
    assert overlap.status == "no_code"
    assert await _status(redis_client, "discord:600") == "pending"
