""""Where is my order?" through the real SDKs: Telegram (PTB, the Bot API stand-in, the
WooCommerce stand-in) and Discord (discord.py, the gateway stand-in, the Shopify stand-in).
In a group the member is moved to private messages and no order data is posted there; in
private the order is checked against the store and answered with its tracking link."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from bot.app import App
from bot.commerce.orders import ASK_EMAIL, ASK_NUMBER, GO_PRIVATE, NOT_FOUND
from bot.ports import Adapter
from lm_service.api import LMClient
from tests.adapters.conftest_discord import dc_standin  # noqa: F401  (fixture)
from tests.commerce.fixtures import *  # noqa: F403  (store_tls, woo_api, shopify_api)
from tests.knowledge.lmcache import EmbedMemo
from tests.standins.discord_api import DiscordStandIn
from tests.standins.shopify_api import ShopifyStandIn
from tests.standins.telegram_api import TelegramStandIn
from tests.standins.tls import StandInTLS
from tests.standins.woocommerce_api import WooCommerceStandIn
from tests.support.harness import running_app
from tests.support.tenancy import approve

pytestmark = pytest.mark.slow
GROUP = -100900
EMAIL = "ann.lee@example.com"

StoreApp = Callable[..., AbstractAsyncContextManager[App]]


@pytest.fixture(scope="session")
def store_model(lm_client: LMClient) -> EmbedMemo:
    return EmbedMemo(lm_client)


@pytest.fixture
def store_app(redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
              store_model: EmbedMemo, store_tls: StandInTLS) -> StoreApp:
    """`async with store_app(adapter, communities, **store settings) as app`: the whole app
    with a store connected, the given communities approved for the default merchant."""

    @asynccontextmanager
    async def make(adapter: Adapter, communities: tuple[str, ...],
                   **settings: Any) -> AsyncIterator[App]:
        async with running_app(redis_url, tmp_path, store_model, [adapter],
                               store_ca_file=store_tls.ca_file, store_sync_interval_s=0,
                               **settings) as app:
            for community in communities:
                await approve(app.redis, community)
            yield app
            await app.router.drain()

    return make


async def test_telegram_group_moves_to_private_and_private_gets_the_order(
        tg_api: TelegramStandIn, woo_api: WooCommerceStandIn, store_app: StoreApp) -> None:
    woo_api.add_order(1042, EMAIL, "completed", items=(("Trailhead 2P Tent", 1),))
    woo_api.add_tracking(1042, "UPS", "1Z999AA1", "https://www.ups.com/track?tracknum=1Z999AA1")
    adapter = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    async with store_app(adapter, (f"telegram:{GROUP}",), store_kind="woocommerce",
                         store_url=woo_api.url, store_key=woo_api.key,
                         store_secret=woo_api.secret):
        tg_api.group(GROUP)
        # 21 never opened a chat with the bot: the group hears only how to reach it
        tg_api.message(GROUP, 21, f"@shopkeep_bot where is my order #1042? {EMAIL}")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)), timeout=60)
        # 22 did: the invitation arrives privately and the group hears nothing
        tg_api.private(22)
        tg_api.message(GROUP, 22, "@shopkeep_bot wheres my package")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(22)), timeout=60)
        assert tg_api.sent_to(22)[0].text == GO_PRIVATE
        [note] = tg_api.sent_to(GROUP)
        assert "open a chat with me" in note.text and "start=private" in note.text
        assert "1042" not in note.text and EMAIL not in note.text  # no order data in the group
        tg_api.message(22, 22, "where is my order?")
        await tg_api.wait_for(lambda: len(tg_api.sent_to(22)) == 2, timeout=60)
        tg_api.message(22, 22, "1042")
        await tg_api.wait_for(lambda: len(tg_api.sent_to(22)) == 3, timeout=60)
        tg_api.message(22, 22, EMAIL)
        await tg_api.wait_for(lambda: len(tg_api.sent_to(22)) == 4, timeout=60)
        texts = [s.text for s in tg_api.sent_to(22)]
        assert texts[1:3] == [ASK_NUMBER, ASK_EMAIL.format(number="1042")]
        assert texts[3].startswith("Order #1042 is completed.")
        assert "https://www.ups.com/track?tracknum=1Z999AA1" in texts[3]
        group_text = " ".join(s.text for s in tg_api.sent_to(GROUP))
        assert "1042" not in group_text and "Tent" not in group_text and "UPS" not in group_text
        assert len(woo_api.requests_to("/wp-json/wc/v3/orders/1042")) == 1  # DMs only


async def test_discord_mention_moves_to_dm_and_the_dm_gets_the_order(
        dc_standin: DiscordStandIn, shopify_api: ShopifyStandIn,  # noqa: F811
        store_app: StoreApp) -> None:
    shopify_api.add_order(1001, EMAIL, "FULFILLED", items=(("Camp Mug", 2),),
                          tracking=(("USPS", "9400111", "https://tools.usps.com/?t=9400111"),))
    adapter = DiscordAdapter(dc_standin.token, api_url=dc_standin.api_url,
                             gateway_url=dc_standin.gateway_url, guild_ready_timeout=0.1)
    async with store_app(adapter, (f"discord:{dc_standin.guild_id}",), store_kind="shopify",
                         store_url=shopify_api.url, store_token=shopify_api.token):
        await dc_standin.message("4", f"<@{dc_standin.bot_id}> where is my order #1001?")
        dm = lambda: dc_standin.messages_in(dc_standin._dm_channel("4")["id"])  # noqa: E731
        await dc_standin.wait_for(lambda: bool(dm()), within=60)
        assert dm()[0].content == GO_PRIVATE
        await dc_standin.message("4", "order 1001 hasn't arrived", dm=True)
        await dc_standin.wait_for(lambda: len(dm()) == 2, within=60)
        await dc_standin.message("4", "bo@example.com", dm=True)
        await dc_standin.wait_for(lambda: len(dm()) == 3, within=60)
        await dc_standin.message("4", EMAIL, dm=True)
        await dc_standin.wait_for(lambda: len(dm()) == 4, within=60)
        texts = [m.content for m in dm()]
        assert texts[1] == ASK_EMAIL.format(number="1001")
        assert texts[2] == NOT_FOUND.format(number="1001")
        assert texts[3].startswith("Order #1001 is shipped.")
        assert "2 × Camp Mug" in texts[3] and "https://tools.usps.com/?t=9400111" in texts[3]
        assert dc_standin.messages_in(dc_standin.general) == []  # nothing in the channel
