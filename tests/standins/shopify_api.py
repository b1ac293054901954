"""A local Shopify Admin GraphQL API (aiohttp, HTTPS on 127.0.0.1) that validates and runs
queries against a subset of the real schema with graphql-core, written from Shopify's docs.

As strict as Shopify where the connector could go wrong: an unknown field or argument fails
validation; a connection needs `first` or `last` (at most 250); a missing or wrong
`X-Shopify-Access-Token` is 401; a token without `read_orders` gets ACCESS_DENIED on orders;
every query has a calculated cost drawn from a leaky bucket (`maximumAvailable`,
`restoreRate`), reported in `extensions.cost`, and a query the bucket cannot pay for is
answered `THROTTLED` (HTTP 200, no data). Orders are searched with `name:#1001`, products
with `status:active`, both paged by opaque cursors. The cost rules are simplified from
Shopify's: objects 1, scalars and enums 0, a connection 2 + first × its node's cost, and no
refund of unused points (so the stand-in throttles a little sooner than Shopify).
"""

from __future__ import annotations

import base64
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    get_named_type,
    graphql,
    is_leaf_type,
    parse,
    validate,
)
from graphql.utilities import value_from_ast_untyped

from tests.standins.tls import StandInTLS

VERSIONS = ("2025-01", "2025-04", "2025-07", "2025-10")
MAX_PAGE = 250

SDL = (Path(__file__).parent / "shopify_admin.graphql").read_text(encoding="utf-8")

SCHEMA: GraphQLSchema = build_schema(SDL)
INVALID_TOKEN = ("[API] Invalid API key or access token (unrecognized login or wrong "
                 "password)")


@dataclass
class Fault:
    status: int
    retry_after: str | None = None


@dataclass
class Call:
    at: float
    status: int
    cost: float | None = None
    throttled: bool = False


@dataclass
class ShopifyStandIn:
    tls: StandInTLS
    token: str = "shpat_standin00000000000000000000"
    scopes: frozenset[str] = frozenset({"read_orders", "read_products"})
    maximum: float = 1000.0
    restore_rate: float = 50.0
    orders: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    down: bool = False
    _available: float = -1.0
    _at: float = 0.0
    _faults: deque[Fault] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/admin/api/{version}/graphql.json", self._graphql)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._available, self._at = self.maximum, time.monotonic()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # Control

    def fail(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        for _ in range(times):
            self._faults.append(Fault(status, retry_after))

    def set_budget(self, available: float) -> None:
        self._available, self._at = available, time.monotonic()

    def add_order(self, number: int, email: str, status: str = "UNFULFILLED",
                  items: tuple[tuple[str, int], ...] = (("Trailhead 2P Tent", 1),),
                  tracking: tuple[tuple[str, str, str], ...] = (),
                  cancelled: bool = False) -> None:
        gid = len(self.orders) + 1
        self.orders.append({
            "id": f"gid://shopify/Order/{5000 + gid}", "name": f"#{number}", "email": email,
            "createdAt": "2026-11-30T10:00:00Z",
            "cancelledAt": "2026-12-01T10:00:00Z" if cancelled else None,
            "displayFulfillmentStatus": status,
            "statusPageUrl": f"https://shop.example/orders/{gid}/authenticate?key=k{gid}",
            "lineItems": _connection_of([
                {"id": f"gid://shopify/LineItem/{gid}{i}", "name": name, "title": name,
                 "quantity": qty, "sku": None} for i, (name, qty) in enumerate(items)]),
            "fulfillments": _list_of([{
                "id": f"gid://shopify/Fulfillment/{gid}", "status": "SUCCESS",
                "createdAt": "2026-12-01T10:00:00Z",
                "trackingInfo": _list_of([{"company": c, "number": n, "url": u}
                                          for c, n, u in tracking])}] if tracking else []),
        })

    def add_product(self, legacy_id: int, title: str, price: str, *, sku: str = "",
                    product_type: str = "Tents", status: str = "ACTIVE",
                    inventory: int = 5, tags: tuple[str, ...] = (),
                    description: str = "") -> dict[str, Any]:
        handle = title.lower().replace(" ", "-")
        money = {"amount": price, "currencyCode": "USD"}
        product = {
            "id": f"gid://shopify/Product/{legacy_id}", "legacyResourceId": str(legacy_id),
            "handle": handle, "title": title, "vendor": "Trailhead",
            "description": lambda info, truncateAt=None, _d=description or f"The {title}.":
                _d[:truncateAt] if truncateAt else _d,
            "descriptionHtml": f"<p>{description or title}</p>", "productType": product_type,
            "tags": list(tags), "status": status,
            "onlineStoreUrl": f"https://shop.example/products/{handle}",
            "totalInventory": inventory, "tracksInventory": True,
            "featuredMedia": {"__typename": "MediaImage", "id": f"gid://m/{legacy_id}",
                              "preview": {"image": {"url": f"https://cdn.example/{handle}.jpg",
                                                    "altText": None}}},
            "priceRangeV2": {"minVariantPrice": money, "maxVariantPrice": money},
            "variants": _connection_of([{"id": f"gid://v/{legacy_id}", "title": "Default",
                                         "sku": sku, "price": price,
                                         "inventoryQuantity": inventory}]),
        }
        self.products = [p for p in self.products if p["legacyResourceId"] != str(legacy_id)]
        self.products.append(product)
        return product

    # Serving

    async def _graphql(self, request: web.Request) -> web.Response:
        call = Call(time.monotonic(), 200)
        self.calls.append(call)
        response = await self._answer(request, call)
        call.status = response.status
        return response

    async def _answer(self, request: web.Request, call: Call) -> web.Response:
        if self.down:
            return web.Response(status=503, text="Service Unavailable")
        if self._faults:
            fault = self._faults.popleft()
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.json_response({"errors": "Internal error"}, status=fault.status,
                                     headers=headers)
        if request.match_info["version"] not in VERSIONS:
            return web.json_response({"errors": "Not Found"}, status=404)
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return web.json_response({"errors": INVALID_TOKEN}, status=401)
        try:
            payload = await request.json()
            document = parse(str(payload["query"]))
        except (ValueError, KeyError, TypeError, GraphQLError) as exc:
            return web.json_response({"errors": [{"message": f"Parse error: {exc}"}]})
        problems = validate(SCHEMA, document)
        if problems:
            return web.json_response({"errors": [p.formatted for p in problems]})
        variables = payload.get("variables") or {}
        try:
            cost = _query_cost(document, variables)
        except GraphQLError as exc:
            return web.json_response({"errors": [exc.formatted]})
        call.cost = cost
        if cost > self.maximum:
            return web.json_response({"errors": [{
                "message": f"Query cost is {cost:.0f}, which exceeds the single query max "
                           f"cost limit ({self.maximum:.0f}).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost,
                               "maxCost": self.maximum}}]})
        available = self._restored()
        if cost > available:
            call.throttled = True
            return web.json_response({
                "errors": [{"message": "Throttled", "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": self._cost_report(cost, None, available)}})
        self._available, self._at = available - cost, time.monotonic()
        result = await graphql(SCHEMA, payload["query"], root_value=_Root(self),
                               variable_values=variables)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        body["extensions"] = {"cost": self._cost_report(cost, cost, self._available)}
        return web.json_response(body)

    def _restored(self) -> float:
        elapsed = time.monotonic() - self._at
        return min(self.maximum, self._available + elapsed * self.restore_rate)

    def _cost_report(self, requested: float, actual: float | None,
                     available: float) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": self.maximum,
                                   "currentlyAvailable": round(available, 1),
                                   "restoreRate": self.restore_rate}}


class _Root:
    """QueryRoot's resolvers (graphql-core calls a callable attribute with info and args)."""

    def __init__(self, shop: ShopifyStandIn) -> None:
        self.shop = shop

    def orders(self, info: Any, query: str | None = None, **args: Any) -> dict[str, Any]:
        if "read_orders" not in self.shop.scopes:
            raise GraphQLError("Access denied for orders field. Required access: "
                               "`read_orders` access scope.",
                               extensions={"code": "ACCESS_DENIED"})
        terms = _terms(query)
        found = [o for o in self.shop.orders
                 if "name" not in terms or o["name"].lower() == terms["name"].lower()
                 or o["name"].lstrip("#") == terms["name"].lstrip("#")]
        return _page(found, **args)

    def products(self, info: Any, query: str | None = None, **args: Any) -> dict[str, Any]:
        if "read_products" not in self.shop.scopes:
            raise GraphQLError("Access denied for products field. Required access: "
                               "`read_products` access scope.",
                               extensions={"code": "ACCESS_DENIED"})
        terms = _terms(query)
        found = [p for p in self.shop.products
                 if "status" not in terms or p["status"].lower() == terms["status"].lower()]
        return _page(found, **args)


def _terms(query: str | None) -> dict[str, str]:
    """Shopify's search syntax, the part we use: `key:value` terms joined by spaces/AND."""
    out: dict[str, str] = {}
    for word in (query or "").replace(" AND ", " ").split():
        key, sep, value = word.partition(":")
        if sep:
            out[key.lower()] = value.strip('"')
    return out


def _page(items: list[dict[str, Any]], first: int | None = None, after: str | None = None,
          last: int | None = None, before: str | None = None,
          reverse: bool | None = None) -> dict[str, Any]:
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    count = first if first is not None else last
    assert count is not None
    if count > MAX_PAGE or count < 0:
        raise GraphQLError(f"The first argument cannot exceed {MAX_PAGE}.")
    start = _decode(after) + 1 if after else 0
    chunk = items[start:start + count]
    edges = [{"cursor": _encode(start + i), "node": node} for i, node in enumerate(chunk)]
    return {"edges": edges, "nodes": chunk, "pageInfo": {
        "hasNextPage": start + count < len(items), "hasPreviousPage": start > 0,
        "startCursor": edges[0]["cursor"] if edges else None,
        "endCursor": edges[-1]["cursor"] if edges else None}}


def _connection_of(items: list[dict[str, Any]]) -> Any:
    return lambda info, **args: _page(items, **args)


def _list_of(items: list[dict[str, Any]]) -> Any:
    return lambda info, first=None: items[:first] if first is not None else items


def _encode(index: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{index}".encode()).decode()


def _decode(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1])
    except (ValueError, IndexError) as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.") from exc


def _query_cost(document: Any, variables: dict[str, Any]) -> float:
    operation = next(d for d in document.definitions
                     if isinstance(d, OperationDefinitionNode))
    return float(_selection_cost(operation.selection_set, SCHEMA.query_type, variables))


def _selection_cost(selection_set: Any, parent: Any, variables: dict[str, Any]) -> int:
    """Objects 1, leaves 0, a list with `first` that many times its element, a connection
    2 + first × what one node (or edge) costs."""
    total = 0
    for node in _fields(selection_set):
        field_def = parent.fields.get(node.name.value)
        if field_def is None:
            continue
        named = get_named_type(field_def.type)
        if is_leaf_type(named):
            continue
        args = {a.name.value: value_from_ast_untyped(a.value, variables)
                for a in node.arguments}
        count = args.get("first") or args.get("last")
        if named.name.endswith("Connection"):
            per_node = sum(
                1 + _selection_cost(sub.selection_set,
                                    get_named_type(named.fields[sub.name.value].type),
                                    variables)
                for sub in _fields(node.selection_set) if sub.name.value in ("nodes", "edges"))
            total += 2 + int(count or 0) * max(1, per_node)
        else:
            inner = _selection_cost(node.selection_set, named, variables)
            total += (int(count) if count is not None else 1) * (1 + inner)
    return total


def _fields(selection_set: Any) -> list[FieldNode]:
    return [n for n in (selection_set.selections if selection_set else [])
            if isinstance(n, FieldNode)]  # fragments are not used by the connector
