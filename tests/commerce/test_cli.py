"""`shopkeep sync`: the catalog from the WooCommerce stand-in, in a separate process; and a
plain sentence when no store is configured or a secret is written in shopkeep.toml."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import redis

from tests.standins.tls import StandInTLS
from tests.standins.woocommerce_api import WooCommerceStandIn

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


async def shopkeep(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the CLI without blocking this loop: the stand-in answers from it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    return process.returncode or 0, out.decode(), err.decode()


async def test_sync_reads_the_store_into_the_catalog(
        woo_api: WooCommerceStandIn, store_tls: StandInTLS, redis_url: str,
        redis_sync: redis.Redis, tmp_path: Path) -> None:
    woo_api.add_product(1, "Glacier Down Sleeping Bag", "249.00", sku="GLACIER-BAG")
    woo_api.add_product(2, "Ridgeline Titanium Stove", "89.00")
    env = {"SHOPKEEP_REDIS_URL": redis_url, "SHOPKEEP_DATA_DIR": str(tmp_path),
           "SHOPKEEP_CONFIG": str(tmp_path / "none.toml"), "SHOPKEEP_STORE_KIND": "woocommerce",
           "SHOPKEEP_STORE_URL": woo_api.url, "SHOPKEEP_STORE_KEY": woo_api.key,
           "SHOPKEEP_STORE_SECRET": woo_api.secret,
           "SHOPKEEP_STORE_CA_FILE": str(store_tls.ca_file)}
    code, out, err = await shopkeep(env, "sync", "--merchant", "m1")
    assert code == 0, err
    assert "2 added, 0 updated, 0 unchanged, 0 removed" in out
    assert redis_sync.smembers("sk:m1:product_skus") == {"GLACIER-BAG", "wc-2"}
    woo_api.down = True
    code, out, err = await shopkeep(env, "sync", "--merchant", "m1")
    assert code == 1 and "couldn't read the products from woocommerce" in err
    assert "Traceback" not in err


async def test_no_store_and_a_secret_in_the_toml_are_plain_errors(tmp_path: Path) -> None:
    env = {"SHOPKEEP_DATA_DIR": str(tmp_path), "SHOPKEEP_CONFIG": str(tmp_path / "none.toml")}
    code, _, err = await shopkeep(env, "sync")
    assert code == 1 and "No store is configured" in err
    toml = tmp_path / "shopkeep.toml"
    toml.write_text('store_kind = "shopify"\nstore_token = "shpat_oops"\n')
    code, _, err = await shopkeep({**env, "SHOPKEEP_CONFIG": str(toml)}, "sync")
    assert code == 2 and "store_token must not be written in shopkeep.toml" in err
    code, _, err = await shopkeep({**env, "SHOPKEEP_STORE_KIND": "woocommerce",
                                   "SHOPKEEP_STORE_URL": "http://shop.example",
                                   "SHOPKEEP_STORE_KEY": "ck", "SHOPKEEP_STORE_SECRET": "cs"},
                                  "sync")
    assert code == 1 and "must start with https://" in err
