"""Where campaign content and audiences come from: catalog, FAQ, segments, opt-ins."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bot.campaigns.repository import CampaignRepo
from bot.errors import UserInputError
from bot.profiles.segments import Segments
from bot.storage.store import Store


@dataclass(frozen=True)
class ProductFact:
    sku: str
    name: str
    description: str
    price: float
    currency: str
    category: str
    tags: tuple[str, ...]
    url: str
    in_stock: bool

    def price_text(self) -> str:
        symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(self.currency, "")
        return f"{symbol}{self.price:,.2f}" if symbol else f"{self.price:,.2f} {self.currency}"

    def fact_line(self) -> str:
        stock = "" if self.in_stock else " (out of stock)"
        link = f" — {self.url}" if self.url else ""
        return f"• {self.name} — {self.price_text()}{stock}{link}"


@dataclass(frozen=True)
class FaqFact:
    id: str
    question: str
    answer: str
    url: str


def _tags(raw: str) -> tuple[str, ...]:
    raw = raw.strip()
    if raw.startswith("["):
        return tuple(str(t) for t in json.loads(raw))
    return tuple(t.strip() for t in raw.split("|") if t.strip())


async def load_products(store: Store, merchant: str) -> list[ProductFact]:
    """The merchant's catalog as the knowledge feature stores it (one hash per SKU)."""
    keys = store.keys(merchant)
    skus = sorted(str(s) for s in await store.redis.smembers(keys.product_skus()))
    pipe = store.redis.pipeline(transaction=False)
    for sku in skus:
        pipe.hgetall(keys.product(sku))
    products = []
    for sku, data in zip(skus, await pipe.execute(), strict=True):
        if not data or "name" not in data:
            continue
        try:
            price = float(data.get("price", "nan"))
        except ValueError:
            continue
        products.append(ProductFact(
            sku=sku, name=data["name"], description=data.get("description", ""),
            price=price, currency=data.get("currency", "USD"),
            category=data.get("category", ""), tags=_tags(data.get("tags", "")),
            url=data.get("url", ""),
            in_stock=data.get("in_stock", "1").lower() in ("1", "true", "yes"),
        ))
    return products


async def load_faq(store: Store, merchant: str) -> list[FaqFact]:
    keys = store.keys(merchant)
    ids = sorted(str(i) for i in await store.redis.smembers(keys.faq_ids()))
    pipe = store.redis.pipeline(transaction=False)
    for entry_id in ids:
        pipe.hgetall(keys.faq(entry_id))
    return [FaqFact(i, d.get("question", ""), d.get("answer", ""), d.get("url", ""))
            for i, d in zip(ids, await pipe.execute(), strict=True) if d]


def check_segment(expr: str) -> str:
    """Validate an audience expression with the profiles grammar; '' means everyone.

    Raises:
        UserInputError: from the profiles parser, naming the bad term.
    """
    # Commas separate terms too, so a segment fits in one unquoted `segment=...` option.
    cleaned = " ".join(expr.replace(",", " ").split())
    if cleaned and cleaned != "all":
        Segments.parse(cleaned)
    return cleaned


def segment_interests(expr: str) -> list[str]:
    """Category/tag names the segment is about (`interest:tents` → tents)."""
    if not expr.strip() or expr.strip() == "all":
        return []
    return list(Segments.parse(expr).interests())


async def dm_audience(store: Store, repo: CampaignRepo, merchant: str, segment: str) -> list[str]:
    """Member keys that are in the segment AND opted in to offers (nobody else gets a DM)."""
    opted = await repo.all_opted_in(merchant)
    if not segment.strip() or segment.strip() == "all":
        return opted
    matching = await Segments(store).members_matching(merchant, segment)
    wanted = set(opted)
    return [m for m in matching if m in wanted]


def choose_products(products: list[ProductFact], wanted: tuple[str, ...],
                    interests: list[str], limit: int = 3) -> list[ProductFact]:
    """Products named by the campaign (SKUs or `category:<name>`), else the in-stock ones that
    best match the audience's interests by category and tags."""
    by_sku = {p.sku.lower(): p for p in products}
    chosen: list[ProductFact] = []
    for item in wanted:
        if item.lower().startswith("category:"):
            category = item.split(":", 1)[1].lower()
            chosen += [p for p in products if p.category.lower() == category and p.in_stock]
        elif item.lower() in by_sku:
            chosen.append(by_sku[item.lower()])
    if not chosen:
        terms = {i.lower() for i in interests}

        def score(p: ProductFact) -> tuple[int, int, str]:
            hits = len(terms & ({p.category.lower()} | {t.lower() for t in p.tags}))
            return (-hits, 0 if p.in_stock else 1, p.sku)

        # Best interest match first; with no match this is simply the in-stock catalog.
        chosen = sorted([p for p in products if p.in_stock] or products, key=score)
    unique = list({p.sku: p for p in chosen}.values())
    return unique[:limit]


def check_products(products: list[ProductFact], wanted: tuple[str, ...]) -> None:
    """Raise a clear error for SKUs or categories the catalog does not have."""
    skus = {p.sku.lower() for p in products}
    categories = {p.category.lower() for p in products}
    for item in wanted:
        if item.lower().startswith("category:"):
            if item.split(":", 1)[1].lower() not in categories:
                raise UserInputError(f"The catalog has no category {item.split(':', 1)[1]!r}; "
                                     f"categories: {', '.join(sorted(categories)) or 'none'}.")
        elif item.lower() not in skus:
            raise UserInputError(f"The catalog has no product with SKU {item!r}.")


_SPLIT = re.compile(r"[,\s]+")


def parse_product_list(text: str) -> tuple[str, ...]:
    return tuple(p for p in _SPLIT.split(text.strip()) if p)
