"""`shopkeep sync [--merchant M]`: the catalog from the connected store, once, now."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.errors import ConfigError
from bot.settings import Settings


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "sync", help="sync the catalog from the connected store (WooCommerce, Shopify)",
        description="Read every published product from the store that SHOPKEEP_STORE_KIND, "
        "SHOPKEEP_STORE_URL and its keys describe, and make it the merchant's catalog: new "
        "products are added, changed ones updated, and products the store no longer lists "
        "are removed from answers and recommendations. A store that fails, or lists no "
        "products at all, changes nothing. The running bot also syncs every "
        "SHOPKEEP_STORE_SYNC_INTERVAL_S seconds, and moderators can run /catalog sync.",
    )
    parser.add_argument("--merchant", help="merchant to sync (default: SHOPKEEP_MERCHANT, "
                        "the one the store belongs to)")
    return parser


async def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    from bot.commerce.feature import build_connector
    from bot.commerce.sync import CatalogSync
    from bot.knowledge.store import KnowledgeStore
    from bot.progress import status
    from bot.storage.store import Store
    from lm_service.client import create_lm_client

    merchant = args.merchant or settings.merchant
    connector = build_connector(settings)
    if connector is None:
        raise ConfigError("No store is configured: set SHOPKEEP_STORE_KIND (woocommerce or "
                          "shopify), SHOPKEEP_STORE_URL and its keys; see the README.")
    store = Store(settings.redis_url, settings.data_dir)
    lm = create_lm_client(settings, redis=None)
    with status("Loading the embedding model..."):
        await store.start()
        await lm.start()
    try:
        await store.register_merchant(merchant)
        await connector.start()
        sync = CatalogSync(store, KnowledgeStore(store, lm), connector, merchant, 0)
        with status(f"Reading the products from {connector.kind}..."):
            result = await sync.run()
    finally:
        await connector.stop()
        await lm.stop()
        await store.stop()
    print(result.summary(connector.kind), file=sys.stdout)
    return 0
