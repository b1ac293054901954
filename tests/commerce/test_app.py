"""The whole app with a store connected (real model, demo shop, the WooCommerce stand-in):
order questions answered before the FAQ, profiles never see the email, and a catalog sync
that adds, changes and removes products — removed ones gone from answers and /recommend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.commerce.orders import ASK_EMAIL, ASK_NUMBER
from bot.demo import DEMO_DIR
from bot.events import Inbound, Privilege
from bot.knowledge.feature import KnowledgeFeature
from lm_service.api import LMClient
from tests.knowledge.lmcache import EmbedMemo
from tests.standins.tls import StandInTLS
from tests.standins.woocommerce_api import WooCommerceStandIn
from tests.support.harness import running_app

pytestmark = pytest.mark.slow
EMAIL = "ann.lee@example.com"


@pytest.fixture(scope="session")
def memo(lm_client: LMClient) -> EmbedMemo:
    return EmbedMemo(lm_client)


class Spy:
    """A message observer beside the profiles: what observers are handed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def observe(self, inbound: Inbound, merchant: str) -> None:
        self.texts.append(inbound.text)


@pytest.fixture
async def shop(woo_api: WooCommerceStandIn, store_tls: StandInTLS, redis_url: str,
               redis_client: aioredis.Redis, tmp_path: Path,
               memo: EmbedMemo) -> AsyncIterator[tuple[App, ConsoleAdapter]]:
    console = ConsoleAdapter(user="ann", interactive=False)
    async with running_app(
            redis_url, tmp_path, memo, [console], store_kind="woocommerce",
            store_url=woo_api.url, store_key=woo_api.key, store_secret=woo_api.secret,
            store_ca_file=store_tls.ca_file, store_sync_interval_s=0) as app:
        knowledge = next(f for f in app.features if isinstance(f, KnowledgeFeature))
        await knowledge.load_demo(DEMO_DIR, "default")
        yield app, console
        await app.router.drain()


async def ask(console: ConsoleAdapter, text: str, **kw: object) -> str:
    return "\n".join(r.text for r in await console.say(text, **kw))  # type: ignore[arg-type]


async def test_an_order_question_is_answered_from_the_store_not_the_faq(
        shop: tuple[App, ConsoleAdapter], woo_api: WooCommerceStandIn) -> None:
    app, console = shop
    woo_api.add_order(1042, EMAIL, "completed")
    woo_api.add_tracking(1042, "UPS", "1Z999AA1", "https://www.ups.com/track?tracknum=1Z999AA1")
    spy = Spy()
    app.router.observers.append(spy)
    # the demo FAQ has a generic "How can I track my order?" entry: the store answers instead
    assert await ask(console, "Where is my package?") == ASK_NUMBER
    assert await ask(console, "1042") == ASK_EMAIL.format(number="1042")
    answer = await ask(console, f"it's {EMAIL}")
    assert answer.startswith("Order #1042 is completed.") and "1Z999AA1" in answer
    # an order *policy* question still gets the FAQ's answer, with its source
    [policy] = await console.say("how do I cancel my order?")
    assert any(c.kind == "faq" for c in policy.citations)
    await app.router.drain()
    profiles = next(f for f in app.features if hasattr(f, "flush"))
    await profiles.flush()  # type: ignore[attr-defined]
    assert "it's [email]" in spy.texts and not any(EMAIL in t for t in spy.texts)
    for key in await app.redis.keys("*"):  # profiles, memory, stats: no address anywhere
        assert EMAIL not in str(await app.redis.dump(key)), key


async def test_catalog_sync_adds_changes_and_removes_products(
        shop: tuple[App, ConsoleAdapter], woo_api: WooCommerceStandIn) -> None:
    app, console = shop
    woo_api.add_product(1, "Glacier Down Sleeping Bag", "249.00", sku="GLACIER-BAG",
                        category="Sleeping bags", tags=("down", "winter"),
                        description="A down sleeping bag rated to -10 C for winter camping.")
    woo_api.add_product(2, "Ridgeline Titanium Stove", "89.00", sku="RIDGE-STOVE",
                        category="Stoves", description="A 45 g titanium backpacking stove.")
    refused = await ask(console, "/catalog sync")
    assert "moderators only" in refused
    first = await ask(console, "/catalog sync", role=Privilege.MODERATOR)
    assert "2 products" in first and "removed" in first  # demo catalog replaced by the store's
    skus = {p.sku for p in await next(
        f for f in app.features if isinstance(f, KnowledgeFeature)).knowledge.products("default")}
    assert skus == {"GLACIER-BAG", "RIDGE-STOVE"}
    [price] = await console.say("how much is the Glacier Down Sleeping Bag?")
    assert "$249" in price.text and [c.id for c in price.citations] == ["GLACIER-BAG"]

    woo_api.add_product(1, "Glacier Down Sleeping Bag", "199.00", sku="GLACIER-BAG",
                        category="Sleeping bags", tags=("down", "winter"),
                        description="A down sleeping bag rated to -10 C for winter camping.")
    del woo_api.products[2]  # the stove is deleted in the store
    second = await ask(console, "/catalog sync", role=Privilege.MODERATOR)
    assert "0 added, 1 updated, 0 unchanged, 1 removed" in second
    [price] = await console.say("how much is the Glacier Down Sleeping Bag?")
    assert "$199" in price.text
    [stove] = await console.say("do you sell the Ridgeline Titanium Stove?")
    assert "RIDGE-STOVE" not in [c.id for c in stove.citations]
    assert "Ridgeline" not in stove.text
    [picks] = await console.say("/recommend a stove for backpacking")
    assert "RIDGE-STOVE" not in [c.id for c in picks.citations]


async def test_a_failed_or_empty_sync_keeps_the_catalog(
        shop: tuple[App, ConsoleAdapter], woo_api: WooCommerceStandIn) -> None:
    app, console = shop
    knowledge = next(f for f in app.features if isinstance(f, KnowledgeFeature)).knowledge
    before = {p.sku for p in await knowledge.products("default")}
    assert before  # the demo catalog
    empty = await ask(console, "/catalog sync", role=Privilege.MODERATOR)
    assert "listed no published products" in empty
    woo_api.add_product(1, "Glacier Down Sleeping Bag", "249.00")
    woo_api.down = True
    down = await ask(console, "/catalog sync", role=Privilege.MODERATOR)
    assert "couldn't read the products" in down and "unchanged" in down
    assert {p.sku for p in await knowledge.products("default")} == before
