"""WooCommerce over its REST API v3: orders by number, published products, all pages."""

from __future__ import annotations

import base64
import logging
import re
import ssl
from typing import Any
from urllib.parse import urlparse

from bot.commerce.connector import (
    Order,
    OrderLine,
    Shipment,
    StoreConnector,
    StoreUnavailable,
)
from bot.commerce.http import HttpClient, HttpResponse, RetryPolicy
from bot.commerce.text import plain_text, product_id, valid_url
from bot.errors import ConfigError
from bot.knowledge.models import Product

log = logging.getLogger(__name__)

API = "/wp-json/wc/v3"
TRACKING_API = "/wp-json/wc-shipment-tracking/v3"  # the Shipment Tracking extension
PER_PAGE = 100  # the API's maximum
MAX_PAGES = 500

# WooCommerce's order statuses, as a member would say them.
STATUS_WORDS = {
    "pending": "waiting for payment",
    "processing": "being prepared",
    "on-hold": "on hold",
    "completed": "completed",
    "cancelled": "cancelled",
    "refunded": "refunded",
    "failed": "payment failed",
    "checkout-draft": "not placed yet",
}
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class WooCommerceConnector(StoreConnector):
    """Authenticates with a consumer key and secret as HTTP Basic auth, which WooCommerce
    accepts over HTTPS only (over plain HTTP it wants OAuth 1.0a signatures): a store URL
    that is not https is refused at start rather than sending the secret in the clear."""

    kind = "woocommerce"

    def __init__(self, url: str, key: str, secret: str, *, policy: RetryPolicy | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if urlparse(url).scheme != "https":
            raise ConfigError("SHOPKEEP_STORE_URL must start with https:// for WooCommerce: "
                              "its API keys may only be sent over HTTPS.")
        basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
        self.http = HttpClient(url, policy=policy, ssl_context=ssl_context, headers={
            "Accept": "application/json", "Authorization": f"Basic {basic}"})
        self._currency: str | None = None

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()

    async def find_order(self, number: str) -> Order | None:
        """Orders are fetched by id; shops whose order numbers differ from ids (sequential
        number plugins) are found by search, matched on the `number` field exactly."""
        data: dict[str, Any] | None = None
        if number.isdigit():
            resp = await self.http.request("GET", f"{API}/orders/{number}")
            if resp.status == 200 and isinstance(resp.body, dict):
                data = resp.body
            elif resp.status != 404:
                raise StoreUnavailable(f"orders/{number}: HTTP {resp.status}")
        if data is None or str(data.get("number", data.get("id"))) != number:
            data = await self._search_order(number)
        if data is None:
            return None
        shipments = await self._shipments(int(data["id"]))
        return _order(number, data, shipments)

    async def _search_order(self, number: str) -> dict[str, Any] | None:
        resp = await self.http.request("GET", f"{API}/orders",
                                       params={"search": number, "per_page": 20})
        _expect_list(resp, "orders")
        return next((o for o in resp.body if str(o.get("number")) == number), None)

    async def _shipments(self, order_id: int) -> list[Shipment]:
        resp = await self.http.request(
            "GET", f"{TRACKING_API}/orders/{order_id}/shipment-trackings")
        if resp.status == 404:  # extension not installed (rest_no_route): no tracking data
            return []
        _expect_list(resp, "shipment-trackings")
        out = []
        for item in resp.body:
            carrier = str(item.get("tracking_provider") or item.get("custom_tracking_provider")
                          or "the carrier")
            link = item.get("tracking_link") or item.get("custom_tracking_link")
            out.append(Shipment(carrier, str(item.get("tracking_number") or ""),
                                valid_url(link)))
        return out

    async def products(self) -> list[Product]:
        currency = await self._shop_currency()
        out: list[Product] = []
        seen: set[str] = set()
        path: str | None = f"{API}/products"
        params: dict[str, Any] | None = {"status": "publish", "per_page": PER_PAGE, "page": 1}
        for page in range(1, MAX_PAGES + 1):
            assert path is not None
            resp = await self.http.request("GET", path, params=params)
            _expect_list(resp, "products")
            for item in resp.body:
                product = _product(item, currency, seen)
                if product is not None:
                    out.append(product)
            path, params = _next_page(resp, path, params, page, self.http.base_url)
            if path is None:
                return out
        raise StoreUnavailable(f"products: more than {MAX_PAGES} pages")

    async def _shop_currency(self) -> str:
        if self._currency is None:
            resp = await self.http.request("GET", f"{API}/data/currencies/current")
            code = resp.body.get("code") if isinstance(resp.body, dict) else None
            if resp.status != 200 or not isinstance(code, str) or not re.fullmatch(
                    r"[A-Z]{3}", code):
                raise StoreUnavailable(f"data/currencies/current: HTTP {resp.status}")
            self._currency = code
        return self._currency


def _next_page(resp: HttpResponse, path: str, params: dict[str, Any] | None,
               page: int, origin: str) -> tuple[str | None, dict[str, Any] | None]:
    """The Link header's rel=next when there is one on the store's own origin (the docs
    recommend following it; elsewhere our key would follow it too); otherwise the next page
    number while X-WP-TotalPages says there are more."""
    link = next((v for k, v in resp.headers.items() if k.lower() == "link"), "")
    match = _LINK_NEXT.search(link)
    if match and match.group(1).startswith(origin + "/"):
        return match.group(1), None
    total = next((v for k, v in resp.headers.items() if k.lower() == "x-wp-totalpages"), None)
    if total is not None and total.isdigit() and page < int(total) and params is not None:
        return path, {**params, "page": page + 1}
    return None, None


def _expect_list(resp: HttpResponse, what: str) -> None:
    if resp.status != 200 or not isinstance(resp.body, list):
        raise StoreUnavailable(f"{what}: HTTP {resp.status}")


def _order(number: str, data: dict[str, Any], shipments: list[Shipment]) -> Order:
    lines = tuple(OrderLine(str(i.get("name") or "item"), int(i.get("quantity") or 0))
                  for i in data.get("line_items") or [])
    raw = str(data.get("status") or "")
    status = STATUS_WORDS.get(raw, raw.replace("-", " ") or "unknown")
    billing = data.get("billing") or {}
    return Order(number=number, email=str(billing.get("email") or ""), status=status,
                 lines=lines, shipments=tuple(shipments))


def _product(item: dict[str, Any], currency: str, seen: set[str]) -> Product | None:
    """A catalog record, or None for what members cannot buy (hidden, no name or price)."""
    if item.get("catalog_visibility") == "hidden" or not item.get("name"):
        return None
    try:
        price = round(float(item.get("price") or item.get("regular_price") or ""), 2)
    except ValueError:
        return None
    sku = product_id(str(item.get("sku") or ""), f"wc-{item.get('id')}", seen)
    categories = [str(c.get("name") or "") for c in item.get("categories") or []]
    images = item.get("images") or []
    description = plain_text(str(item.get("short_description") or "")) or plain_text(
        str(item.get("description") or ""))
    return Product(
        sku=sku, name=plain_text(str(item["name"])), description=description or item["name"],
        price=price, currency=currency,
        category=(categories[0] if categories else "uncategorised").lower(),
        tags=tuple(str(t.get("name") or "").lower() for t in item.get("tags") or []
                   if t.get("name")),
        url=valid_url(item.get("permalink")),
        image_url=valid_url(images[0].get("src")) if images else None,
        in_stock=item.get("stock_status") in ("instock", "onbackorder"))
