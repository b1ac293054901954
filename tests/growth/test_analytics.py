"""/stats figures against a seeded history, computed independently here, must match exactly."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict

import pytest

from bot.events import Citation, Platform, Privilege
from bot.growth import GrowthFeature
from bot.growth.analytics import ALL, PLATFORMS, format_report
from bot.growth.periods import DAY_S, Calendar
from tests.growth.conftest import Build, inbound, say

M = "default"
NOW = dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC).timestamp()
SOURCES = [Citation("faq", "returns", "Returns policy"),
           Citation("faq", "shipping", "Shipping times"),
           Citation("product", "TENT-2P", "Trailhead 2P Tent"),
           Citation("product", "STOVE-1", "Pocket Stove"),
           Citation("faq", "warranty", "Warranty"),
           Citation("product", "BAG-0C", "Down Bag 0C")]
INTERESTS = ["tents", "stoves", "Sleeping bags", "packs", "lights", "boots", "maps"]


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def _window(now: float, days: int) -> set[str]:
    last = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return {(last - dt.timedelta(days=n)).isoformat() for n in range(days)}


async def test_stats_match_a_seeded_history_exactly(growth: GrowthFeature) -> None:
    rng = random.Random(20261120)
    members = [f"{p}:{n}" for p in ("telegram", "discord", "console") for n in range(12)]
    # telegram:1 and discord:1 are one person: combined figures count them once.
    code = await growth.linking.issue(M, "telegram:1")
    await growth.linking.redeem(M, "discord:1", code)
    person = {m: m for m in members} | {"discord:1": "telegram:1"}

    messages: list[tuple[str, float]] = []
    answers: list[tuple[str, bool, list[Citation], float]] = []
    deliveries: list[tuple[str, int, float]] = []
    interests: list[tuple[list[str], float]] = []
    for _ in range(400):
        ts = NOW - rng.uniform(0, 70 * DAY_S)
        kind = rng.random()
        if kind < 0.55:
            member = rng.choice(members)
            messages.append((member, ts))
            platform, _, user = member.partition(":")
            await growth.observe(inbound(Platform(platform), user, "hi all", ts=ts), M)
        elif kind < 0.8:
            platform = rng.choice(PLATFORMS)
            answered = rng.random() < 0.7
            cited = rng.sample(SOURCES, rng.randint(0, 3)) if answered else []
            cited += cited[:1]  # a source cited twice in one answer counts once
            answers.append((platform, answered, cited, ts))
            await growth.record_answer(M, platform, answered, cited, ts=ts)
        elif kind < 0.9:
            platform, count = rng.choice(PLATFORMS), rng.randint(1, 40)
            deliveries.append((platform, count, ts))
            await growth.record_delivery(M, platform, count, ts=ts)
        else:
            shown = rng.sample(INTERESTS, rng.randint(1, 3))
            interests.append((shown, ts))
            await growth.count_interests(M, [*shown, shown[0].upper()], ts=ts)

    for days in (1, 7, 30):
        report = await growth.stats(M, days=days, now=NOW)
        window = _window(NOW, days)
        # Active members per platform (as persons) and combined.
        for w in (1, 7, 30):
            active: dict[str, set[str]] = defaultdict(set)
            for member, ts in messages:
                if _day(ts) in _window(NOW, w):
                    active[member.partition(":")[0]].add(person[member])
                    active[ALL].add(person[member])
            assert report.active[w] == {p: len(active[p]) for p in (*PLATFORMS, ALL)}
        expected: dict[str, Counter[str]] = defaultdict(Counter)
        for member, ts in messages:
            if _day(ts) in window:
                for col in (member.partition(":")[0], ALL):
                    expected[col]["messages"] += 1
        sources: Counter[str] = Counter()
        for platform, answered, cited, ts in answers:
            if _day(ts) in window:
                for col in (platform, ALL):
                    expected[col]["questions"] += 1
                    expected[col]["answered" if answered else "unanswered"] += 1
                for c in {(c.kind, c.id): c for c in cited}.values():
                    sources[f"{c.kind}:{c.id}"] += 1
        for platform, count, ts in deliveries:
            if _day(ts) in window:
                expected[platform]["deliveries"] += count
                expected[ALL]["deliveries"] += count
        for col in (*PLATFORMS, ALL):
            for metric in ("messages", "questions", "answered", "unanswered", "deliveries"):
                assert report.counts[col][metric] == expected[col][metric], (days, col, metric)
        titles = {f"{c.kind}:{c.id}": c.title for c in SOURCES}
        ranked = sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert report.sources == [(titles[k], n) for k, n in ranked]
        previous = _window(NOW - days * DAY_S, days)
        now_count: Counter[str] = Counter()
        before_count: Counter[str] = Counter()
        for shown, ts in interests:
            for name in shown:
                if _day(ts) in window:
                    now_count[name.lower()] += 1
                if _day(ts) in previous:
                    before_count[name.lower()] += 1
        top = sorted(now_count.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert report.interests == [(i, n, before_count[i]) for i, n in top]
        assert [d for d, *_ in report.daily] == sorted(window)
        for day, active_that_day, message_count, _ in report.daily:
            assert message_count == sum(1 for _, ts in messages if _day(ts) == day)
            assert active_that_day == len({person[m] for m, ts in messages if _day(ts) == day})
    assert report.counts[ALL]["messages"] > 50  # the seed gave the 30-day window real data


async def test_stats_command_is_for_moderators_and_prints_the_table(
        growth: GrowthFeature) -> None:
    for user, platform in (("1", Platform.TELEGRAM), ("2", Platform.TELEGRAM),
                           ("3", Platform.DISCORD)):
        await say(growth, inbound(platform, user, "morning!"))
    await growth.record_answer(M, "discord", True, [SOURCES[0]])
    await growth.record_answer(M, "telegram", False, [])
    (refused,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/stats"))
    assert "moderator" in refused.text
    (reply,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/stats 30",
                                         role=Privilege.MODERATOR))
    lines = reply.text.splitlines()
    assert lines[0].startswith("Community stats, last 30 days")
    assert lines[1].split() == ["discord", "telegram", "all"]
    assert next(r for r in lines if r.startswith("Active members, 1 day")).split()[-3:] == [
        "1", "2", "3"]
    assert next(r for r in lines if r.startswith("Messages")).split()[-3:] == ["1", "2", "3"]
    assert next(r for r in lines if r.startswith("  not answered")).split()[-3:] == [
        "0", "1", "1"]
    assert "Sources used most: Returns policy (1)" in reply.text
    (bad,) = await say(growth, inbound(Platform.TELEGRAM, "1", "/stats 90",
                                       role=Privilege.MODERATOR))
    assert "1 to 60 days" in bad.text


async def test_days_follow_the_merchant_timezone(make_growth: Build) -> None:
    growth = await make_growth(timezone="America/New_York")
    late_evening = dt.datetime(2026, 11, 20, 3, 30, tzinfo=dt.UTC).timestamp()  # 22:30 NY
    await growth.observe(inbound(Platform.TELEGRAM, "1", "hi", ts=late_evening), M)
    report = await growth.stats(M, days=2, now=late_evening + 2 * 3600)
    # 22:30 in New York is still the 19th there, though the 20th in UTC.
    assert report.daily == [("2026-11-19", 1, 1, 0), ("2026-11-20", 0, 0, 0)]
    assert Calendar("America/New_York").week(late_evening) == "2026-W47"


async def test_report_rejects_a_period_outside_bounds(growth: GrowthFeature) -> None:
    with pytest.raises(ValueError, match="1 to 60"):
        await growth.analytics.report(M, NOW, days=0)
    with pytest.raises(ValueError, match="unknown metric"):
        await growth.analytics.record_count(M, "telegram", "likes", NOW)
    assert format_report(await growth.stats(M, days=7, now=NOW)).count("\n") >= 10


async def test_top_interests_come_from_profiles_once_per_member_per_day(
        growth: GrowthFeature) -> None:
    from bot.profiles.model import Profile
    from bot.storage.keys import Keys

    redis = growth.core.store.redis
    for member, affinity in (("telegram:1", {"c:tents": 0.6, "t:ultralight": 0.2,
                                             "c:stoves": 0.01}),
                             ("discord:2", {"c:tents": 0.3, "c:packs": 0.4, "t:tents": 0.5,
                                            "c:lights": 0.1, "c:maps": 0.06})):
        await redis.hset(Keys(M).profile(member),
                         mapping=Profile(member=member, affinity=affinity).to_hash())
    for _ in range(3):  # several messages in a day count the member once
        await growth.observe(inbound(Platform.TELEGRAM, "1", "hi", ts=NOW), M)
        await growth.observe(inbound(Platform.DISCORD, "2", "hi", ts=NOW), M)
    await growth.observe(inbound(Platform.TELEGRAM, "1", "hi", ts=NOW - 7 * DAY_S), M)
    await growth.observe(inbound(Platform.TELEGRAM, "3", "no profile yet", ts=NOW), M)
    report = await growth.stats(M, days=7, now=NOW)
    # discord:2's top three are tents (0.5 as a tag), packs, lights; maps is fourth.
    assert report.interests == [("tents", 2, 1), ("lights", 1, 0), ("packs", 1, 0),
                                ("ultralight", 1, 1)]
