"""Profiles through a whole App with the real embedding model: learning from chatter,
/recommend, opting out, /mydata, /forgetme, tenancy, and a burst of 5,000 messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.app import App
from bot.events import CommunityRef, Inbound, MemberRef, Outbound, Platform, Privilege
from bot.profiles import ProfilesFeature
from bot.profiles.model import Profile
from lm_service.api import LMClient
from tests.profiles.support import import_demo_catalog
from tests.profiles.test_erase import _everything_mentioning
from tests.support.harness import running_app

TENT_TALK = ["we're planning a backpacking trip next month and need a light tent",
             "which tent holds up best in heavy rain?", "haha my cat just knocked my coffee over",
             "how heavy is a two person tent usually"]
STOVE_TALK = ["my old camp stove finally broke", "do you have fuel canisters for stoves?",
              "I cook for two on the trail most weekends"]


def profiles_of(app: App) -> ProfilesFeature:
    return next(f for f in app.features if isinstance(f, ProfilesFeature))


async def chatter(app: App, user: str, texts: list[str], merchant: str = "default",
                  platform: Platform = Platform.TELEGRAM) -> None:
    """Group messages not addressed to the bot: observed, not answered."""
    community = CommunityRef(platform, "-100", "-100")
    for text in texts:
        replies = await app.handle(Inbound(platform=platform, member=MemberRef(platform, user),
                                           text=text, community=community, merchant=merchant))
        assert replies == []
    await app.router.drain()
    await profiles_of(app).flush()


@pytest.fixture
async def app(redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
              lm_client: LMClient) -> AsyncIterator[App]:
    async with running_app(redis_url, tmp_path, lm_client) as started:
        await import_demo_catalog(started.store, lm_client, "default")
        yield started


class Member:
    """One Telegram group member typing commands (chatter goes through `chatter`)."""

    def __init__(self, app: App, user: str, role: Privilege = Privilege.MEMBER,
                 merchant: str = "default") -> None:
        self.app, self.user, self.role, self.merchant = app, user, role, merchant

    async def say(self, text: str) -> list[Outbound]:
        return await self.app.handle(Inbound(
            platform=Platform.TELEGRAM, member=MemberRef(Platform.TELEGRAM, self.user),
            text=text, community=CommunityRef(Platform.TELEGRAM, "-100", "-100"),
            privilege=self.role, merchant=self.merchant))


async def test_tent_talker_gets_tents_first_and_stove_talker_stoves(app: App) -> None:
    await chatter(app, "1", TENT_TALK)
    await chatter(app, "2", STOVE_TALK)
    feature = profiles_of(app)
    tents = await feature.recommend("default", "telegram:1", None, 3)
    stoves = await feature.recommend("default", "telegram:2", None, 3)
    assert tents[0].sku.startswith("TH-TENT-"), tents
    assert stoves[0].sku.startswith("TH-STOVE-"), stoves
    assert all(r.reason and r.url for r in tents)
    # An explicit query leads; the profile only tilts near-ties.
    cooking = await feature.recommend("default", "telegram:1", "something to cook dinner on", 3)
    assert cooking[0].sku.startswith(("TH-STOVE-", "TH-COOK-")), cooking
    profile = await feature.profile("default", "telegram:1")
    assert profile is not None and profile.messages == 4 and profile.on_topic == 3
    assert profile.top_interests(1)[0][0] == "tents"
    assert "telegram:-100" in profile.communities


async def test_recommend_command_cites_products_best_first_in_stock_only(app: App) -> None:
    member = Member(app, "walker")
    await chatter(app, "walker", ["I just bought the Trailhead 2P Tent, love it",
                                  "now I need a tent for winter camping in the snow"])
    [reply] = await member.say("/recommend a tent")
    skus = [c.id for c in reply.citations]
    assert reply.citations and all(c.kind == "product" for c in reply.citations)
    assert skus[0].startswith("TH-TENT-") and skus[1].startswith("TH-TENT-")
    assert "TH-TENT-2P" not in skus  # they said they bought it
    assert "TH-TENT-UL1" not in skus  # out of stock in the demo catalog
    assert reply.citations[0].title in reply.text and reply.citations[0].url in reply.text


async def test_recommend_without_anything_known_asks_what_they_want(app: App) -> None:
    member = Member(app, "newcomer")
    [reply] = await member.say("/recommend")
    assert "tell me what you're looking for" in reply.text


async def test_opting_out_stops_updates_and_opting_in_resumes(app: App) -> None:
    member = Member(app, "quiet")
    await chatter(app, "quiet", TENT_TALK[:1])
    [reply] = await member.say("/optout")
    assert "won't learn" in reply.text
    before = await app.store.redis.hgetall(app.store.keys("default").profile("telegram:quiet"))
    await chatter(app, "quiet", STOVE_TALK)
    after = await app.store.redis.hgetall(app.store.keys("default").profile("telegram:quiet"))
    assert after == before
    await member.say("/optin")
    await chatter(app, "quiet", STOVE_TALK[:1])
    profile = await profiles_of(app).profile("default", "telegram:quiet")
    assert profile is not None and profile.messages == 2


async def test_mydata_has_what_is_stored_and_nothing_of_anyone_else(app: App) -> None:
    await chatter(app, "alice", TENT_TALK)
    await chatter(app, "bob", STOVE_TALK)
    keys = app.store.keys("default")
    await app.store.redis.rpush(keys.memory("telegram:alice", "telegram:-100"), "hi", "hello")
    member = Member(app, "alice")
    [reply] = await member.say("/mydata")
    assert reply.private and reply.files
    raw = reply.files[0].data.decode()
    data = json.loads(raw)
    stored = await app.store.redis.hgetall(keys.profile("telegram:alice"))
    meta = json.loads(stored["meta"])
    assert data["profile"]["messages_seen"] == meta["msgs"] == 4
    assert data["profile"]["recent_messages"] == meta["recent"]
    assert set(data["profile"]["interests"]) == set(json.loads(stored["aff"]))
    assert data["other_records"] == {"memory:telegram:alice:telegram:-100": ["hi", "hello"]}
    assert "bob" not in raw and "stove" not in raw.lower()


async def test_forgetme_confirms_then_leaves_no_key_of_the_member(app: App) -> None:
    await chatter(app, "alice", TENT_TALK)
    await chatter(app, "bob", STOVE_TALK)
    keys = app.store.keys("default")
    await app.store.redis.rpush(keys.memory("telegram:alice", "telegram:-100"), "hi")
    await app.store.redis.lpush(keys.unanswered(), json.dumps(
        {"question": "kayaks?", "member": "telegram:alice"}), json.dumps(
        {"question": "canoes?", "member": "telegram:bob"}))
    member = Member(app, "alice")
    [early] = await member.say("/forgetme confirm")
    assert "Run /forgetme first" in early.text
    assert await _everything_mentioning(app.store, "telegram:alice")
    [ask] = await member.say("/forgetme")
    assert ask.buttons and ask.buttons[0].action == "/forgetme confirm"
    assert await app.store.redis.exists(keys.profile("telegram:alice"))  # nothing erased yet
    [done] = await member.say(ask.buttons[0].action)
    assert "erased everything" in done.text and "could not" not in done.text
    assert await _everything_mentioning(app.store, "telegram:alice") == []
    assert await app.store.redis.exists(keys.profile("telegram:bob"))
    assert len(await app.store.redis.lrange(keys.unanswered(), 0, -1)) == 1


async def test_one_merchant_never_sees_another_merchants_members(app: App) -> None:
    await chatter(app, "1", TENT_TALK, merchant="default")
    await import_demo_catalog(app.store, app.lm, "othershop")
    await chatter(app, "2", TENT_TALK, merchant="othershop")
    mod = Member(app, "mod", Privilege.MODERATOR, merchant="othershop")
    [preview] = await mod.say("/segment preview interest:tents")
    assert "telegram:2" in preview.text and "telegram:1" not in preview.text
    [other] = await mod.say("/profile telegram:1")
    assert "no profile" in other.text
    member = Member(app, "someone", merchant="othershop")
    [refused] = await member.say("/profile telegram:2")
    assert "Only moderators" in refused.text


async def test_a_burst_of_5000_messages_is_fully_absorbed(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    async with running_app(redis_url, tmp_path, lm_client, profile_queue_max=500,
                           communities=["telegram:-100"]) as app:
        await import_demo_catalog(app.store, lm_client, "default")
        community = CommunityRef(Platform.TELEGRAM, "-100", "-100")
        topics = ["tent", "stove", "sleeping bag", "backpack", "headlamp", "rain jacket"]
        for n in range(5000):
            text = f"thinking about a {topics[n % 6]} for trip number {n // 6}"
            await app.handle(Inbound(platform=Platform.TELEGRAM,
                                     member=MemberRef(Platform.TELEGRAM, str(n % 250)),
                                     text=text, community=community))
        await app.router.drain()
        feature = profiles_of(app)
        assert feature.queue.spilled_total > 0  # the bounded queue overflowed into Redis
        await feature.flush(within_s=300)
        keys = app.store.keys("default")
        pipe = app.store.redis.pipeline(transaction=False)
        for member in range(250):
            pipe.hgetall(keys.profile(f"telegram:{member}"))
        counts = [Profile.from_hash("x", d).messages for d in await pipe.execute()]
        assert sum(counts) == 5000 and set(counts) == {20}
        assert await app.store.redis.xlen(keys.profile_ingest()) == 0
