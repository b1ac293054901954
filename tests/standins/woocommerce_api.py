"""A local WooCommerce REST API v3 (aiohttp, HTTPS on 127.0.0.1), written from the API docs.

What the connector must live with, as WooCommerce does it: consumer key/secret as HTTP Basic
auth (or query string) over HTTPS, refused with WordPress-style 401 bodies
(`woocommerce_rest_authentication_error`, `woocommerce_rest_cannot_view`); a Read key refused
for writes; 404 `woocommerce_rest_shop_order_invalid_id` for an unknown order and
`rest_no_route` for a route no plugin registered; `per_page` 1-100 else 400
`rest_invalid_param`; `X-WP-Total`, `X-WP-TotalPages` and a `Link` header on lists. Faults
(429 with Retry-After, 5xx, an outage) are queued by tests, and every request is logged.
"""

from __future__ import annotations

import base64
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.standins.tls import StandInTLS

API = "/wp-json/wc/v3"


@dataclass
class Fault:
    status: int
    retry_after: str | None = None


@dataclass
class Request:
    at: float
    method: str
    path: str
    query: dict[str, str]
    status: int = 0


@dataclass
class WooCommerceStandIn:
    tls: StandInTLS
    key: str = "ck_standin0000000000000000000000000000001"
    secret: str = "cs_standin0000000000000000000000000000001"
    permissions: str = "read"
    tracking_plugin: bool = True
    currency: str = "USD"
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    trackings: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    down: bool = False  # every request answers 503, as a host in maintenance does
    _faults: deque[tuple[str, Fault]] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{path:.*}", self._route)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # Control

    def fail(self, path_prefix: str, status: int, times: int = 1,
             retry_after: str | None = None) -> None:
        """The next `times` requests under `path_prefix` answer `status`."""
        for _ in range(times):
            self._faults.append((path_prefix, Fault(status, retry_after)))

    def add_order(self, order_id: int, email: str, status: str = "processing",
                  items: tuple[tuple[str, int], ...] = (("Trailhead 2P Tent", 1),),
                  number: str | None = None) -> dict[str, Any]:
        order = {
            "id": order_id, "parent_id": 0, "number": number or str(order_id),
            "status": status, "currency": self.currency, "total": "329.00",
            "date_created": "2026-11-30T10:00:00",
            "billing": {"first_name": "Ann", "last_name": "Lee", "email": email,
                        "phone": "555-0100"},
            "shipping": {"first_name": "Ann", "last_name": "Lee", "city": "Bend"},
            "line_items": [{"id": order_id * 10 + i, "name": name, "quantity": qty,
                            "sku": "", "total": "0.00"}
                           for i, (name, qty) in enumerate(items)],
            "meta_data": [],
        }
        self.orders[order_id] = order
        return order

    def add_tracking(self, order_id: int, provider: str, number: str, link: str) -> None:
        self.trackings.setdefault(order_id, []).append({
            "tracking_id": f"t{len(self.trackings.get(order_id, []))}",
            "tracking_provider": provider, "tracking_link": link,
            "tracking_number": number, "date_shipped": "2026-12-01"})

    def add_product(self, product_id: int, name: str, price: str, *, sku: str = "",
                    category: str = "Tents", status: str = "publish",
                    stock_status: str = "instock", description: str = "",
                    tags: tuple[str, ...] = ()) -> dict[str, Any]:
        product = {
            "id": product_id, "name": name, "slug": name.lower().replace(" ", "-"),
            "permalink": f"https://shop.example/product/{name.lower().replace(' ', '-')}/",
            "type": "simple", "status": status, "catalog_visibility": "visible",
            "description": description or f"<p>The {name}.</p>",
            "short_description": description or f"<p>The <strong>{name}</strong>.</p>",
            "sku": sku, "price": price, "regular_price": price, "sale_price": "",
            "stock_status": stock_status,
            "categories": [{"id": 1, "name": category, "slug": category.lower()}],
            "tags": [{"id": i, "name": t, "slug": t} for i, t in enumerate(tags)],
            "images": [{"id": 1, "src": f"https://shop.example/img/{product_id}.jpg"}],
        }
        self.products[product_id] = product
        return product

    def requests_to(self, path_prefix: str) -> list[Request]:
        return [r for r in self.log if r.path.startswith(path_prefix)]

    # Serving

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        entry = Request(time.monotonic(), request.method, request.path, dict(request.query))
        self.log.append(entry)
        if self.down:
            response: web.StreamResponse = web.Response(status=503, text="<html>Service "
                                                        "Unavailable</html>",
                                                        content_type="text/html")
        elif (fault := self._take_fault(request.path)) is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            response = _error(fault.status, "rest_fault", "Injected by the test.", headers)
        else:
            response = await handler(request)
        entry.status = response.status
        return response

    def _take_fault(self, path: str) -> Fault | None:
        for index, (prefix, fault) in enumerate(self._faults):
            if path.startswith(prefix):
                del self._faults[index]
                return fault
        return None

    async def _route(self, request: web.Request) -> web.Response:
        refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        parts = request.path.strip("/").split("/")
        if request.method != "GET":
            return _error(401, "woocommerce_rest_authentication_error",
                          "The API key provided does not have write permissions.")
        if request.path == f"{API}/data/currencies/current":
            return web.json_response({"code": self.currency, "name": "Currency",
                                      "symbol": "$"})
        if request.path == f"{API}/products":
            return self._list(request, [p for p in self.products.values()
                                        if _status_ok(p, request.query.get("status", "any"))])
        if request.path == f"{API}/orders":
            term = request.query.get("search", "")
            found = [o for o in self.orders.values() if not term or term in (
                str(o["id"]), o["number"], o["billing"]["email"])]
            return self._list(request, found)
        if parts[:4] == ["wp-json", "wc", "v3", "orders"] and len(parts) == 5 \
                and parts[4].isdigit():
            order = self.orders.get(int(parts[4]))
            if order is None:
                return _error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            return web.json_response(order)
        if (self.tracking_plugin and parts[:4] == ["wp-json", "wc-shipment-tracking", "v3",
                                                   "orders"]
                and len(parts) == 6 and parts[5] == "shipment-trackings" and parts[4].isdigit()):
            if int(parts[4]) not in self.orders:
                return _error(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
            return web.json_response(self.trackings.get(int(parts[4]), []))
        return _error(404, "rest_no_route",
                      "No route was found matching the URL and request method.")

    def _authenticate(self, request: web.Request) -> web.Response | None:
        """Basic auth over HTTPS, or consumer_key/consumer_secret in the query string."""
        key = request.query.get("consumer_key")
        secret = request.query.get("consumer_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                key = secret = None
        if not key:
            return _error(401, "woocommerce_rest_cannot_view",
                          "Sorry, you cannot list resources.")
        if key != self.key:
            return _error(401, "woocommerce_rest_authentication_error",
                          "Consumer key is invalid.")
        if secret != self.secret:
            return _error(401, "woocommerce_rest_authentication_error",
                          "Consumer secret is invalid.")
        return None

    def _list(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        try:
            per_page = int(request.query.get("per_page", "10"))
            page = int(request.query.get("page", "1"))
        except ValueError:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page, page")
        if not 1 <= per_page <= 100:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page",
                          params={"per_page": "per_page must be between 1 (inclusive) and "
                                              "100 (inclusive)"})
        if page < 1:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): page")
        items = sorted(items, key=lambda i: -int(i["id"]))  # newest first, as WP lists
        total_pages = max(1, -(-len(items) // per_page)) if items else 0
        chunk = items[(page - 1) * per_page: page * per_page]
        base = f"{self.url}{request.path}"
        query = {k: v for k, v in request.query.items()
                 if k not in ("consumer_key", "consumer_secret")}
        links = []
        if page > 1:
            links.append(f'<{base}?{urlencode({**query, "page": page - 1})}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{base}?{urlencode({**query, "page": page + 1})}>; rel="next"')
        headers = {"X-WP-Total": str(len(items)), "X-WP-TotalPages": str(total_pages)}
        if links:
            headers["Link"] = ", ".join(links)
        return web.json_response(chunk, headers=headers)


def _status_ok(product: dict[str, Any], wanted: str) -> bool:
    return wanted == "any" or product["status"] == wanted


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           params: dict[str, str] | None = None) -> web.Response:
    data: dict[str, Any] = {"status": status}
    if params:
        data["params"] = params
    return web.json_response({"code": code, "message": message, "data": data},
                             status=status, headers=headers)
