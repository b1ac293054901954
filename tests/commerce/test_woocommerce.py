"""The WooCommerce connector against the REST API stand-in: orders, every product page,
and the failures the real API hands out (401, 404, 429 with Retry-After, 5xx, an outage)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.commerce.connector import StoreAuthError, StoreUnavailable
from bot.commerce.http import RetryPolicy
from bot.commerce.woocommerce import WooCommerceConnector
from bot.errors import ConfigError
from tests.standins.tls import StandInTLS
from tests.standins.woocommerce_api import WooCommerceStandIn

FAST = RetryPolicy(attempts=4, backoff_s=0.05, max_wait_s=5.0, timeout_s=5.0)


@pytest.fixture
async def woo(woo_api: WooCommerceStandIn,
              store_tls: StandInTLS) -> AsyncIterator[WooCommerceConnector]:
    connector = WooCommerceConnector(woo_api.url, woo_api.key, woo_api.secret, policy=FAST,
                                     ssl_context=store_tls.client_context())
    await connector.start()
    yield connector
    await connector.stop()


async def test_an_order_comes_with_its_items_and_tracking(
        woo_api: WooCommerceStandIn, woo: WooCommerceConnector) -> None:
    woo_api.add_order(1042, "ann@example.com", "completed",
                      items=(("Trailhead 2P Tent", 1), ("Camp Mug", 2)))
    woo_api.add_tracking(1042, "UPS", "1Z999AA10123456784",
                         "https://www.ups.com/track?tracknum=1Z999AA10123456784")
    order = await woo.find_order("1042")
    assert order is not None
    assert (order.number, order.email, order.status) == ("1042", "ann@example.com",
                                                         "completed")
    assert [(line.name, line.quantity) for line in order.lines] == [
        ("Trailhead 2P Tent", 1), ("Camp Mug", 2)]
    [shipment] = order.shipments
    assert shipment.carrier == "UPS" and shipment.tracking_number == "1Z999AA10123456784"
    assert shipment.tracking_url == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    assert await woo.find_order("9999") is None  # 404 invalid id, then an empty search


async def test_order_numbers_that_differ_from_ids_are_found_by_search(
        woo_api: WooCommerceStandIn, woo: WooCommerceConnector) -> None:
    woo_api.add_order(77, "bo@example.com", number="2001")  # a sequential-numbers plugin
    woo_api.tracking_plugin = False  # and no Shipment Tracking extension: rest_no_route
    order = await woo.find_order("2001")
    assert order is not None and order.email == "bo@example.com" and order.shipments == ()
    assert await woo.find_order("77") is None  # id 77's number is 2001, not 77


async def test_every_page_of_published_products_is_read(
        woo_api: WooCommerceStandIn, woo: WooCommerceConnector) -> None:
    for i in range(1, 231):
        woo_api.add_product(i, f"Product {i}", f"{i}.50", sku=f"SKU-{i}")
    woo_api.add_product(500, "Draft thing", "1.00", status="draft")
    woo_api.add_product(501, "No stock", "2.00", stock_status="outofstock")
    products = await woo.products()
    assert len(products) == 231  # 230 + the out-of-stock one; the draft is not published
    assert {p.sku for p in products} >= {"SKU-1", "SKU-230", "wc-501"}
    tent = next(p for p in products if p.sku == "SKU-7")
    assert (tent.price, tent.currency, tent.category, tent.in_stock) == (7.5, "USD", "tents",
                                                                         True)
    assert tent.description == "The Product 7." and tent.url and tent.url.startswith("https")
    assert not next(p for p in products if p.sku == "wc-501").in_stock
    pages = [r for r in woo_api.requests_to("/wp-json/wc/v3/products")]
    assert [r.query.get("page") for r in pages] == ["1", "2", "3"]  # Link rel=next followed
    assert all(r.query["per_page"] == "100" and r.query["status"] == "publish" for r in pages)


async def test_a_wrong_key_is_an_auth_error_not_a_retry(
        woo_api: WooCommerceStandIn, store_tls: StandInTLS) -> None:
    wrong = WooCommerceConnector(woo_api.url, woo_api.key, "cs_wrong", policy=FAST,
                                 ssl_context=store_tls.client_context())
    try:
        with pytest.raises(StoreAuthError, match="401"):
            await wrong.find_order("1042")
    finally:
        await wrong.stop()
    assert len(woo_api.log) == 1 and woo_api.log[0].status == 401


async def test_429_waits_as_long_as_retry_after_says(
        woo_api: WooCommerceStandIn, woo: WooCommerceConnector) -> None:
    woo_api.add_order(1042, "ann@example.com")
    woo_api.fail("/wp-json/wc/v3/orders", 429, retry_after="1")
    order = await woo.find_order("1042")
    assert order is not None
    first, second = woo_api.requests_to("/wp-json/wc/v3/orders")[:2]
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0  # Retry-After: 1 honoured (the backoff alone is 0.05)


async def test_a_retry_after_longer_than_the_cap_gives_up_at_once(
        woo_api: WooCommerceStandIn, woo: WooCommerceConnector) -> None:
    woo_api.fail("/wp-json/wc/v3/orders", 429, retry_after="120")
    with pytest.raises(StoreUnavailable, match="wait 120"):
        await woo.find_order("1042")
    assert len(woo_api.log) == 1


async def test_5xx_is_retried_with_backoff_and_an_outage_is_reported(
        woo_api: WooCommerceStandIn, woo: WooCommerceConnector) -> None:
    woo_api.add_order(1042, "ann@example.com")
    woo_api.fail("/wp-json/wc/v3/orders", 502, times=2)
    assert await woo.find_order("1042") is not None
    assert [r.status for r in woo_api.log[:3]] == [502, 502, 200]
    woo_api.down = True
    before = len(woo_api.log)
    with pytest.raises(StoreUnavailable, match="503"):
        await woo.products()
    assert len(woo_api.log) - before == FAST.attempts


async def test_plain_http_is_refused_before_any_secret_is_sent() -> None:
    with pytest.raises(ConfigError, match="https"):
        WooCommerceConnector("http://shop.example", "ck_x", "cs_x")
