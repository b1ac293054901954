"""Product recommendations: the member's interest profile blended with what they ask for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.errors import UserInputError
from bot.profiles.catalog import CatalogCache, Product
from bot.profiles.model import Profile
from bot.storage.store import Store
from lm_service.api import LMClient

# With a query, it leads and the profile only breaks near-ties (someone who talks about tents
# asking for "something to cook on" wants a stove); without one, the profile is all there is.
PROFILE_TILT_WITH_QUERY = 0.2
AFFINITY_BONUS_WITH_QUERY = 0.05
AFFINITY_BONUS_PROFILE_ONLY = 0.25
_MENTION_INTEREST = 0.3


@dataclass(frozen=True)
class Recommendation:
    sku: str
    name: str
    reason: str
    url: str | None
    score: float


class Recommender:
    def __init__(self, store: Store, lm: LMClient, catalog: CatalogCache) -> None:
        self.store = store
        self.lm = lm
        self.catalog = catalog

    async def recommend(self, merchant: str, member_key: str, query: str | None = None,
                        limit: int = 3) -> list[Recommendation]:
        """Best in-stock products for this member, best first, each with a one-line reason.

        Raises:
            UserInputError: no query and nothing known about the member yet.
        """
        query = (query or "").strip() or None
        keys = self.store.keys(merchant)
        data = await self.store.redis.hgetall(keys.profile(member_key))
        profile = Profile.from_hash(member_key, data) if data else Profile(member_key)
        if query is None and profile.vector is None:
            raise UserInputError("I don't know what you like yet — tell me what you're looking "
                                 "for, e.g. /recommend a warm sleeping bag for winter.")
        catalog = await self.catalog.get(merchant)
        fresh = await self.catalog.products(merchant)
        if not catalog.products:
            raise UserInputError("This shop has no products in its catalog yet.")
        query_vec = None
        if query is not None:
            query_vec = np.asarray((await self.lm.embed([query]))[0], dtype=np.float32)
        bonus = AFFINITY_BONUS_WITH_QUERY if query_vec is not None else AFFINITY_BONUS_PROFILE_ONLY
        sims = _blend(catalog.matrix, query_vec, profile.vector)
        query_sims = catalog.matrix @ query_vec if query_vec is not None else None
        ranked: list[Recommendation] = []
        for index, product in enumerate(catalog.products):
            current = fresh.get(product.sku)
            if current is None or not current.in_stock or product.sku in profile.bought:
                continue
            interest_name, interest = _best_interest(profile, current)
            score = float(sims[index]) + bonus * interest
            query_sim = float(query_sims[index]) if query_sims is not None else None
            ranked.append(Recommendation(current.sku, current.name,
                                         _reason(current, query, query_sim, interest_name,
                                                 interest),
                                         current.url, round(score, 4)))
        ranked.sort(key=lambda r: (-r.score, r.sku))
        return ranked[:max(1, limit)]


def _blend(matrix: np.ndarray, query: np.ndarray | None,
           profile: np.ndarray | None) -> np.ndarray:
    """Per-product similarity: the query's, tilted by the profile's."""
    if query is None:
        assert profile is not None
        return matrix @ profile
    sims = matrix @ query
    if profile is not None:
        sims = sims + PROFILE_TILT_WITH_QUERY * (matrix @ profile)
    return sims


def _best_interest(profile: Profile, product: Product) -> tuple[str, float]:
    options = [(product.category, profile.affinity.get(f"c:{product.category}", 0.0))]
    options += [(tag, profile.affinity.get(f"t:{tag}", 0.0)) for tag in product.tags]
    name, value = max(options, key=lambda kv: kv[1])
    return name, value


def _reason(product: Product, query: str | None, query_sim: float | None, interest_name: str,
            interest: float) -> str:
    parts: list[str] = []
    if query is not None and query_sim is not None:
        short = query if len(query) <= 40 else query[:37] + "..."
        parts.append(f"fits “{short}”" if query_sim >= 0.3 else f"closest we have to “{short}”")
    if interest >= _MENTION_INTEREST:
        parts.append(f"you've been talking about {interest_name}")
    if not parts:
        parts.append("close to what you've been talking about")
    price = f" — {_price(product)}" if product.price else ""
    text = " and ".join(parts)
    return text[0].upper() + text[1:] + price


def _price(product: Product) -> str:
    try:
        amount = f"{float(product.price):,.2f}".removesuffix(".00")
    except ValueError:
        return f"{product.price} {product.currency}".strip()
    return f"${amount}" if product.currency.upper() == "USD" else f"{amount} {product.currency}"
