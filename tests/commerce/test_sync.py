"""The catalog sync on its schedule (Shopify stand-in, real embedder): it picks up store
changes by itself, a restart inside the interval does not sync again, and two syncs never
run at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.commerce.http import RetryPolicy
from bot.commerce.shopify import ShopifyConnector
from bot.commerce.sync import CatalogSync, SyncFailed
from bot.knowledge.store import KnowledgeStore
from bot.storage.store import Store
from lm_service.api import LMClient
from tests.knowledge.lmcache import EmbedMemo
from tests.standins.shopify_api import ShopifyStandIn
from tests.standins.tls import StandInTLS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def sync_model(lm_client: LMClient) -> EmbedMemo:
    return EmbedMemo(lm_client)


@pytest.fixture
async def connector(shopify_api: ShopifyStandIn,
                    store_tls: StandInTLS) -> AsyncIterator[ShopifyConnector]:
    shop = ShopifyConnector(shopify_api.url, shopify_api.token,
                            policy=RetryPolicy(attempts=2, backoff_s=0.05, timeout_s=5.0),
                            ssl_context=store_tls.client_context())
    await shop.start()
    yield shop
    await shop.stop()


async def skus(knowledge: KnowledgeStore) -> set[str]:
    return {p.sku for p in await knowledge.products("default")}


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


async def test_the_schedule_syncs_changes_and_a_restart_waits_for_its_turn(
        store: Store, connector: ShopifyConnector, shopify_api: ShopifyStandIn,
        sync_model: EmbedMemo) -> None:
    knowledge = KnowledgeStore(store, sync_model)  # type: ignore[arg-type]
    shopify_api.add_product(1, "Glacier Down Sleeping Bag", "249.00", sku="GLACIER-BAG")
    sync = CatalogSync(store, knowledge, connector, "default", interval_s=1)
    await sync.start()
    try:
        await eventually(lambda: _has(knowledge, {"GLACIER-BAG"}))
        shopify_api.add_product(2, "Ridgeline Titanium Stove", "89.00", sku="RIDGE-STOVE")
        await eventually(lambda: _has(knowledge, {"GLACIER-BAG", "RIDGE-STOVE"}))
    finally:
        await sync.stop()
    calls = len(shopify_api.calls)
    later = CatalogSync(store, knowledge, connector, "default", interval_s=3600)
    await later.start()  # the last sync was moments ago: nothing is fetched now
    await asyncio.sleep(1.0)
    await later.stop()
    assert len(shopify_api.calls) == calls
    assert (await later.last_run())["products"] == "2"


async def test_two_syncs_at_once_run_once(
        store: Store, connector: ShopifyConnector, shopify_api: ShopifyStandIn,
        sync_model: EmbedMemo) -> None:
    knowledge = KnowledgeStore(store, sync_model)  # type: ignore[arg-type]
    shopify_api.add_product(1, "Glacier Down Sleeping Bag", "249.00", sku="GLACIER-BAG")
    first = CatalogSync(store, knowledge, connector, "default", 0)
    second = CatalogSync(store, knowledge, connector, "default", 0)  # another process
    results = await asyncio.gather(first.run(), second.run(), return_exceptions=True)
    refused = [r for r in results if isinstance(r, SyncFailed)]
    assert len(refused) == 1 and "already running" in refused[0].message
    assert await skus(knowledge) == {"GLACIER-BAG"}
    assert (await second.run()).report.unchanged == 1  # the lock was released


async def _has(knowledge: KnowledgeStore, wanted: set[str]) -> bool:
    return await skus(knowledge) == wanted
