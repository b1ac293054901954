"""Helpers for the profiles tests: a started Store, stored profiles, the demo catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.profiles.model import Profile
from bot.storage.store import Store
from lm_service.api import LMClient
from tests.support.demo_catalog import seed_demo_catalog

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-shop"


async def save_profile(store: Store, merchant: str, profile: Profile) -> None:
    """Store a profile the way the ingestion writer does (hash + index)."""
    keys = store.keys(merchant)
    await store.redis.hset(keys.profile(profile.member), mapping=profile.to_hash())
    await store.redis.zadd(keys.profile_index(), {profile.member: profile.last_seen})


def make_profile(member: str, *, affinity: dict[str, float] | None = None,
                 last_seen: float = 0.0, platforms: tuple[str, ...] = ("telegram",),
                 messages: int = 3, dim: int = 8, seed: int = 0) -> Profile:
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=dim).astype(np.float32)
    return Profile(member=member, vector=vector / np.linalg.norm(vector),
                   affinity=dict(affinity or {}), messages=messages, on_topic=messages,
                   first_seen=last_seen - 100, last_seen=last_seen, platforms=set(platforms))


load_demo_catalog = seed_demo_catalog


async def import_demo_catalog(store: Store, lm: LMClient, merchant: str) -> int:
    """Import the demo catalog the way `shopkeep import catalog` does (issue 5's store)."""
    from bot.knowledge.files import parse_catalog
    from bot.knowledge.store import KnowledgeStore

    products = parse_catalog((DEMO / "catalog.csv").read_bytes(), "catalog.csv")
    await KnowledgeStore(store, lm).import_catalog(merchant, products)
    return len(products)
