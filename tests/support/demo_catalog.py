"""Seed the demo catalog into Redis the way its CSV reads, for tests that need products but
not the knowledge importer (and so not the embedder)."""

from __future__ import annotations

import csv

from bot.demo import DEMO_DIR
from bot.storage.store import Store


async def seed_demo_catalog(store: Store, merchant: str = "default") -> int:
    """Write each CSV row of examples/demo-shop/catalog.csv into its product hash, with the
    header's field names; returns the number of products."""
    keys = store.keys(merchant)
    with (DEMO_DIR / "catalog.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    pipe = store.redis.pipeline(transaction=False)
    for row in rows:
        pipe.hset(keys.product(row["sku"]), mapping=row)
        pipe.sadd(keys.product_skus(), row["sku"])
    await pipe.execute()
    return len(rows)
