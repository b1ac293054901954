"""The Shopify connector against the Admin GraphQL stand-in: orders by name, products by
cursor, and the cost budget — waited for before a query, and honoured when throttled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.commerce.connector import StoreAuthError, StoreUnavailable
from bot.commerce.http import RetryPolicy
from bot.commerce.shopify import ORDER_QUERY, ShopifyConnector
from tests.standins.shopify_api import ShopifyStandIn
from tests.standins.tls import StandInTLS

FAST = RetryPolicy(attempts=4, backoff_s=0.05, max_wait_s=10.0, timeout_s=5.0)


@pytest.fixture
async def shop(shopify_api: ShopifyStandIn,
               store_tls: StandInTLS) -> AsyncIterator[ShopifyConnector]:
    connector = ShopifyConnector(shopify_api.url, shopify_api.token, policy=FAST,
                                 ssl_context=store_tls.client_context())
    await connector.start()
    yield connector
    await connector.stop()


async def test_an_order_is_found_by_its_name_with_items_and_tracking(
        shopify_api: ShopifyStandIn, shop: ShopifyConnector) -> None:
    shopify_api.add_order(1001, "ann@example.com", "FULFILLED",
                          items=(("Trailhead 2P Tent", 1), ("Camp Mug", 2)),
                          tracking=(("UPS", "1Z999", "https://ups.example/1Z999"),))
    shopify_api.add_order(1002, "bo@example.com", cancelled=True)
    order = await shop.find_order("1001")
    assert order is not None
    assert (order.email, order.status) == ("ann@example.com", "shipped")
    assert [(line.name, line.quantity) for line in order.lines] == [
        ("Trailhead 2P Tent", 1), ("Camp Mug", 2)]
    assert [(s.carrier, s.tracking_number, s.tracking_url) for s in order.shipments] == [
        ("UPS", "1Z999", "https://ups.example/1Z999")]
    assert order.status_url and order.status_url.startswith("https://shop.example/orders/")
    cancelled = await shop.find_order("1002")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert await shop.find_order("1003") is None


async def test_products_are_read_page_by_page_with_the_cursor(
        shopify_api: ShopifyStandIn, shop: ShopifyConnector) -> None:
    for i in range(1, 121):
        shopify_api.add_product(9000 + i, f"Thing {i}", f"{i}.00", sku=f"TH-{i}")
    shopify_api.add_product(9999, "Drafted", "1.00", status="DRAFT")
    shopify_api.add_product(9998, "Sold out", "3.00", inventory=0)
    products = await shop.products()
    assert len(products) == 121  # the draft is not active
    assert {p.sku for p in products} >= {"TH-1", "TH-120", "shopify-9998"}
    assert not next(p for p in products if p.sku == "shopify-9998").in_stock
    first = next(p for p in products if p.sku == "TH-1")
    assert (first.price, first.currency, first.category) == (1.0, "USD", "tents")
    assert first.url == "https://shop.example/products/thing-1"
    assert first.image_url == "https://cdn.example/thing-1.jpg"
    assert len(shopify_api.calls) == 3  # 50 + 50 + 21


async def test_a_throttled_query_waits_for_the_budget_it_reports(
        shopify_api: ShopifyStandIn, shop: ShopifyConnector) -> None:
    shopify_api.add_order(1001, "ann@example.com")
    shopify_api.restore_rate = 100.0
    shopify_api.set_budget(0)  # the bucket is empty: the first try is THROTTLED
    assert await shop.find_order("1001") is not None
    throttled, served = shopify_api.calls
    assert throttled.throttled and throttled.cost is not None and not served.throttled
    # 88 points at 100 a second: the retry came no sooner than the budget allowed
    assert served.at - throttled.at >= throttled.cost / 100.0 - 0.05


async def test_the_budget_is_waited_for_before_a_query_is_sent(
        shopify_api: ShopifyStandIn, shop: ShopifyConnector) -> None:
    """After one products page the bucket is nearly empty; the connector waits for the
    restore instead of being throttled."""
    for i in range(1, 101):
        shopify_api.add_product(9000 + i, f"Thing {i}", "5.00")
    shopify_api.maximum, shopify_api.restore_rate = 500.0, 250.0
    shopify_api.set_budget(500.0)
    assert len(await shop.products()) == 100
    assert [c.throttled for c in shopify_api.calls] == [False, False]
    first, second = shopify_api.calls
    assert first.cost is not None and second.at - first.at >= (first.cost - 48) / 250.0


async def test_a_wrong_token_and_a_missing_scope_are_auth_errors(
        shopify_api: ShopifyStandIn, shop: ShopifyConnector, store_tls: StandInTLS) -> None:
    wrong = ShopifyConnector(shopify_api.url, "shpat_wrong", policy=FAST,
                             ssl_context=store_tls.client_context())
    try:
        with pytest.raises(StoreAuthError, match="401"):
            await wrong.find_order("1001")
    finally:
        await wrong.stop()
    shopify_api.scopes = frozenset({"read_products"})
    with pytest.raises(StoreAuthError, match="read_orders"):
        await shop.find_order("1001")


async def test_5xx_and_429_are_retried_and_an_outage_is_reported(
        shopify_api: ShopifyStandIn, shop: ShopifyConnector) -> None:
    shopify_api.add_order(1001, "ann@example.com")
    shopify_api.fail(503)
    shopify_api.fail(429, retry_after="1.0")
    assert await shop.find_order("1001") is not None
    assert [c.status for c in shopify_api.calls] == [503, 429, 200]
    assert shopify_api.calls[2].at - shopify_api.calls[1].at >= 1.0
    shopify_api.down = True
    with pytest.raises(StoreUnavailable):
        await shop.find_order("1001")


async def test_the_stand_in_refuses_what_shopify_refuses(
        shopify_api: ShopifyStandIn, shop: ShopifyConnector) -> None:
    """Strictness of the stand-in itself: an unknown field fails validation, and a
    connection without `first` is an error, as on Shopify."""
    with pytest.raises(StoreUnavailable, match="Cannot query field 'trackingNumber'"):
        await shop.query(ORDER_QUERY.replace("email", "email trackingNumber"), {"query": ""})
    with pytest.raises(StoreUnavailable, match="first or last"):
        await shop.query("query { products { nodes { title } } }", {})
