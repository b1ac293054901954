"""Shopify over the Admin GraphQL API: orders by name, active products by cursor, within the
query-cost budget the API reports after every call."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from bot.commerce.connector import (
    Order,
    OrderLine,
    Shipment,
    StoreAuthError,
    StoreConnector,
    StoreUnavailable,
)
from bot.commerce.http import HttpClient, RetryPolicy
from bot.commerce.text import plain_text, product_id, valid_url
from bot.errors import ConfigError
from bot.knowledge.models import Product

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2025-07"
MAX_PAGES = 1000

ORDER_QUERY = """
query OrderByName($query: String!) {
  orders(first: 2, query: $query) {
    nodes {
      name
      email
      cancelledAt
      displayFulfillmentStatus
      statusPageUrl
      lineItems(first: 20) { nodes { name quantity } }
      fulfillments(first: 5) { status trackingInfo(first: 3) { company number url } }
    }
  }
}
"""

PRODUCTS_QUERY = """
query Products($first: Int!, $cursor: String) {
  products(first: $first, after: $cursor, query: "status:active") {
    pageInfo { hasNextPage endCursor }
    nodes {
      legacyResourceId
      title
      description
      productType
      tags
      onlineStoreUrl
      totalInventory
      tracksInventory
      featuredMedia { preview { image { url } } }
      priceRangeV2 { minVariantPrice { amount currencyCode } }
      variants(first: 1) { nodes { sku } }
    }
  }
}
"""

FULFILLMENT_WORDS = {
    "FULFILLED": "shipped",
    "PARTIALLY_FULFILLED": "partly shipped",
    "IN_PROGRESS": "being prepared",
    "PENDING_FULFILLMENT": "being prepared",
    "OPEN": "received, not shipped yet",
    "UNFULFILLED": "received, not shipped yet",
    "SCHEDULED": "scheduled",
    "ON_HOLD": "on hold",
    "REQUEST_DECLINED": "on hold",
    "RESTOCKED": "returned",
}


@dataclass
class CostBudget:
    """The leaky bucket of query cost points the API reports in `extensions.cost`: before a
    query we wait until the bucket (restored at `restore` points a second since the last
    report) holds what that query cost last time."""

    maximum: float = 0.0
    available: float = 0.0
    restore: float = 0.0
    at: float = 0.0

    def update(self, throttle: dict[str, Any]) -> None:
        try:
            self.maximum = float(throttle["maximumAvailable"])
            self.available = float(throttle["currentlyAvailable"])
            self.restore = float(throttle["restoreRate"])
            self.at = time.monotonic()
        except (KeyError, TypeError, ValueError):
            log.warning("Shopify sent a throttle status we cannot read: %r", throttle)

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` points are available (0 when they are, or when unknown)."""
        if self.restore <= 0 or cost <= 0:
            return 0.0
        now = self.available + (time.monotonic() - self.at) * self.restore
        return max(0.0, (min(cost, self.maximum) - min(now, self.maximum)) / self.restore)


class ShopifyConnector(StoreConnector):
    """Authenticates with an Admin API access token (a custom app's, with read_orders and
    read_products). `url` is the shop's https://<shop>.myshopify.com address."""

    kind = "shopify"

    def __init__(self, url: str, token: str, *, api_version: str = DEFAULT_VERSION,
                 policy: RetryPolicy | None = None, page_size: int = 50,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if urlparse(url).scheme != "https":
            raise ConfigError("SHOPKEEP_STORE_URL must start with https:// for Shopify.")
        self.http = HttpClient(url, policy=policy, ssl_context=ssl_context, headers={
            "X-Shopify-Access-Token": token, "Content-Type": "application/json",
            "Accept": "application/json"})
        self.path = f"/admin/api/{api_version}/graphql.json"
        self.page_size = page_size
        self.budget = CostBudget()
        self._costs: dict[str, float] = {}  # query → what it cost last time
        self._lock = asyncio.Lock()  # one query at a time keeps the budget arithmetic true

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()

    async def query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one GraphQL query within the cost budget; returns its `data`.

        Raises:
            StoreUnavailable: throttled or failing past the retry policy.
            StoreAuthError: the token lacks a scope the query needs (ACCESS_DENIED).
        """
        rules = self.http.policy
        async with self._lock:
            for attempt in range(1, rules.attempts + 1):
                wait = self.budget.wait_for(self._costs.get(query, 0.0))
                if wait > rules.max_wait_s:
                    raise StoreUnavailable(f"Shopify cost budget needs {wait:.0f} s")
                if wait > 0:
                    log.info("waiting %.2f s for Shopify's query cost budget", wait)
                    await asyncio.sleep(wait)
                resp = await self.http.request("POST", self.path,
                                               json_body={"query": query,
                                                          "variables": variables})
                body = resp.body if isinstance(resp.body, dict) else {}
                if resp.status != 200 or not body:
                    raise StoreUnavailable(f"graphql: HTTP {resp.status}")
                cost = (body.get("extensions") or {}).get("cost") or {}
                if cost.get("throttleStatus"):
                    self.budget.update(cost["throttleStatus"])
                if cost.get("requestedQueryCost") is not None:
                    self._costs[query] = float(cost["requestedQueryCost"])
                codes = {str(((e.get("extensions") or {}).get("code")) or "")
                         for e in body.get("errors") or [] if isinstance(e, dict)}
                if "THROTTLED" in codes:
                    log.info("Shopify throttled a query (attempt %d)", attempt)
                    continue  # the loop waits for the budget the response reported
                if "ACCESS_DENIED" in codes:
                    raise StoreAuthError("the Shopify token lacks a scope: "
                                         f"{_messages(body)}")
                if body.get("errors"):
                    raise StoreUnavailable(f"graphql errors: {_messages(body)}")
                data = body.get("data")
                if not isinstance(data, dict):
                    raise StoreUnavailable("graphql: no data")
                return data
        raise StoreUnavailable(f"Shopify throttled {rules.attempts} attempts")

    async def find_order(self, number: str) -> Order | None:
        data = await self.query(ORDER_QUERY, {"query": f"name:#{number}"})
        for node in (data.get("orders") or {}).get("nodes") or []:
            name = str(node.get("name") or "")
            if name.lstrip("#") == number or re.sub(r"\D", "", name) == number:
                return _order(number, node)
        return None

    async def products(self) -> list[Product]:
        out: list[Product] = []
        seen: set[str] = set()
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            data = await self.query(PRODUCTS_QUERY, {"first": self.page_size,
                                                     "cursor": cursor})
            page = data.get("products") or {}
            for node in page.get("nodes") or []:
                product = _product(node, seen)
                if product is not None:
                    out.append(product)
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return out
            cursor = info.get("endCursor")
            if not cursor:
                raise StoreUnavailable("products: hasNextPage without an endCursor")
        raise StoreUnavailable(f"products: more than {MAX_PAGES} pages")


def _messages(body: dict[str, Any]) -> str:
    return "; ".join(str(e.get("message")) for e in body.get("errors") or []
                     if isinstance(e, dict))[:300]


def _order(number: str, node: dict[str, Any]) -> Order:
    lines = tuple(OrderLine(str(i.get("name") or "item"), int(i.get("quantity") or 0))
                  for i in (node.get("lineItems") or {}).get("nodes") or [])
    shipments = tuple(
        Shipment(str(t.get("company") or "the carrier"), str(t.get("number") or ""),
                 valid_url(t.get("url")))
        for f in node.get("fulfillments") or [] if f.get("status") != "CANCELLED"
        for t in f.get("trackingInfo") or [])
    raw = str(node.get("displayFulfillmentStatus") or "")
    status = "cancelled" if node.get("cancelledAt") else FULFILLMENT_WORDS.get(
        raw, raw.replace("_", " ").lower() or "unknown")
    return Order(number=number, email=str(node.get("email") or ""), status=status,
                 lines=lines, shipments=shipments, status_url=valid_url(
                     node.get("statusPageUrl")))


def _product(node: dict[str, Any], seen: set[str]) -> Product | None:
    price = ((node.get("priceRangeV2") or {}).get("minVariantPrice") or {})
    try:
        amount = round(float(str(price.get("amount"))), 2)
    except (TypeError, ValueError):
        return None
    currency = str(price.get("currencyCode") or "")
    title = plain_text(str(node.get("title") or ""))
    if not title or not re.fullmatch(r"[A-Z]{3}", currency):
        return None
    variants = (node.get("variants") or {}).get("nodes") or []
    sku = product_id(str(variants[0].get("sku") or "") if variants else "",
                     f"shopify-{node.get('legacyResourceId')}", seen)
    image = (((node.get("featuredMedia") or {}).get("preview") or {}).get("image") or {})
    in_stock = not node.get("tracksInventory") or int(node.get("totalInventory") or 0) > 0
    return Product(
        sku=sku, name=title, description=plain_text(str(node.get("description") or ""))
        or title, price=amount, currency=currency,
        category=(str(node.get("productType") or "") or "uncategorised").lower(),
        tags=tuple(str(t).lower() for t in node.get("tags") or [] if str(t).strip()),
        url=valid_url(node.get("onlineStoreUrl")), image_url=valid_url(image.get("url")),
        in_stock=in_stock)
