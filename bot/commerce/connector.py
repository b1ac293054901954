"""The one small interface every store connector implements, and the records it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from bot.errors import ShopkeepError
from bot.knowledge.models import Product


class StoreError(ShopkeepError):
    """Base of the connectors' errors; never shown to a member as is."""


class StoreUnavailable(StoreError):
    """The store did not answer usefully (timeouts, 5xx, throttling past the retries)."""


class StoreAuthError(StoreError):
    """The store refused our credentials (401/403): a setup problem, told to moderators."""


@dataclass(frozen=True)
class Shipment:
    carrier: str
    tracking_number: str
    tracking_url: str | None = None


@dataclass(frozen=True)
class OrderLine:
    name: str
    quantity: int


@dataclass(frozen=True)
class Order:
    """An order as the member may see it once verified. `email` is only compared, never shown
    or stored."""

    number: str
    email: str
    status: str  # a short, member-readable status ("shipped", "processing", ...)
    lines: tuple[OrderLine, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    status_url: str | None = None


class StoreConnector(ABC):
    """A shop system (WooCommerce, Shopify, ...). Implementations own their HTTP session;
    `start()`/`stop()` open and close it. Every method raises `StoreUnavailable` or
    `StoreAuthError` rather than a transport error."""

    kind: str

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def find_order(self, number: str) -> Order | None:
        """The order whose customer-facing number is `number` ("1042"), or None."""

    @abstractmethod
    async def products(self) -> list[Product]:
        """Every published product, all pages, as catalog records."""


def emails_match(given: str, on_order: str) -> bool:
    """Emails compare case-insensitively and without surrounding spaces; an empty address on
    the order matches nothing."""
    import hmac

    a, b = given.strip().lower(), on_order.strip().lower()
    return bool(b) and hmac.compare_digest(a.encode(), b.encode())
