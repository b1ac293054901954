"""A scheduled campaign through the real adapters: discord.py and python-telegram-bot talking
to the local Discord and Telegram stand-ins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from bot.campaigns import CampaignFeature
from bot.commands.registry import CommandSpec
from bot.events import Inbound, Outbound, Platform
from bot.router import Router
from tests.campaigns.conftest import Build, say, wait_until
from tests.campaigns.test_scheduler import soon
from tests.standins.discord_api import DiscordStandIn
from tests.standins.telegram_api import TelegramStandIn
from tests.support.tenancy import approve

GROUP = -100500
POST = "Spring tents are in: the Trailhead 2P pitches in five minutes."


@dataclass
class Host:
    """What the adapters start with: the real router with the campaigns feature observing."""

    feature: CampaignFeature

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        core = self.feature.core
        return await Router(core.registry, core.tenancy, observers=[self.feature]).handle(inbound)

    @property
    def commands(self) -> Sequence[CommandSpec]:
        return self.feature.core.registry.all()

    @property
    def redis(self) -> aioredis.Redis:
        return self.feature.core.store.redis


@pytest.fixture
async def standins() -> AsyncIterator[tuple[DiscordStandIn, TelegramStandIn]]:
    discord, telegram = DiscordStandIn(), TelegramStandIn()
    await discord.start()
    await telegram.start()
    yield discord, telegram
    await telegram.stop()
    await discord.stop()


async def test_a_due_campaign_posts_to_discord_and_telegram_standins(
        make_feature: Build, standins: tuple[DiscordStandIn, TelegramStandIn]) -> None:
    dc_api, tg_api = standins
    discord = DiscordAdapter(dc_api.token, api_url=dc_api.api_url,
                             gateway_url=dc_api.gateway_url, guild_ready_timeout=0.1)
    telegram = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    # The moderator also writes from DMs, which only a configured admin account may.
    feature = await make_feature([discord, telegram], admin_ids=["discord:mod"])
    await approve(feature.core.store.redis, f"discord:{dc_api.guild_id}", f"telegram:{GROUP}")
    host = Host(feature)
    await discord.start(host)
    await telegram.start(host)
    try:
        # Members chat on both platforms: that is how the bot learns the channels exist.
        await dc_api.message("4", "anyone tried the new tents?")
        tg_api.group(GROUP)
        tg_api.message(GROUP, 77, "hello from telegram")
        dc_key, tg_key = f"discord:{dc_api.general}", f"telegram:{GROUP}"

        async def known() -> set[str]:
            return await feature.repo.known_channels("default")

        for _ in range(100):
            if {dc_key, tg_key} <= await known():
                break
            await asyncio.sleep(0.05)
        assert {dc_key, tg_key} <= await known()

        created = await say(feature, f'/campaign create spring {soon(2)} {dc_key},{tg_key} '
                            '"Spring tents"', channel=None)
        assert "Campaign spring created" in created
        await say(feature, f"/campaign edit spring text {POST}", channel=None)
        await say(feature, "/campaign approve spring", channel=None)
        await wait_until(lambda: bool(dc_api.messages_in(dc_api.general))
                         and bool(tg_api.sent_to(GROUP)), 10)
        await asyncio.sleep(0.5)
        assert [m.content for m in dc_api.messages_in(dc_api.general)] == [POST]
        assert [s.text for s in tg_api.sent_to(GROUP)] == [POST]
        [(run_id, info)] = await feature.repo.recent_runs("default", "spring")
        assert info["status"] == "done"
        log = await feature.repo.deliveries("default", "spring", run_id)
        assert {d.status for d in log.values()} == {"sent"} and len(log) == 2
        assert all(d.message_ids for d in log.values())
    finally:
        await telegram.stop()
        await discord.stop()
    assert feature.core.outbox.platforms == [Platform.DISCORD, Platform.TELEGRAM]


async def test_campaign_dms_reach_opted_in_members_on_telegram(
        make_feature: Build, standins: tuple[DiscordStandIn, TelegramStandIn]) -> None:
    from tests.campaigns.test_runner import RUN, add_campaign

    _, tg_api = standins
    telegram = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    feature = await make_feature([telegram], start=False)
    await telegram.start(Host(feature))
    try:
        tg_api.user(11, "ann")
        tg_api.private(11)  # ann opened a chat with the bot; bob (12) never did
        tg_api.user(12, "bob")
        tg_api.user(13, "cy")
        tg_api.private(13)  # cy opened a chat but never opted in to offers
        for member in ("telegram:11", "telegram:12"):
            await feature.repo.set_offers("default", member, True)
        campaign = await add_campaign(feature, "offer", "dm")
        result = await feature.runner.run(campaign.id, RUN)
        assert (result.sent, result.failed) == (1, 1)
        assert len(tg_api.sent_to(11)) == 1 and tg_api.sent_to(12) == []
        assert tg_api.sent_to(13) == []
        log = await feature.repo.deliveries("default", "offer", RUN)
        assert log["telegram:11"].status == "sent"
        assert log["telegram:12"].status == "failed" and "Forbidden" in log["telegram:12"].detail
        keys = feature.core.store.keys("default")
        assert await feature.core.store.redis.zcard(keys.campaign_dm_log("telegram:11")) == 1
        assert await feature.core.store.redis.zcard(keys.campaign_dm_log("telegram:12")) == 0
    finally:
        await telegram.stop()
