"""Fixtures for the store stand-ins (HTTPS on 127.0.0.1 with a throwaway CA), shared by the
commerce tests and the adapter tests (`from tests.commerce.fixtures import *`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.standins.shopify_api import ShopifyStandIn
from tests.standins.tls import StandInTLS, make_tls
from tests.standins.woocommerce_api import WooCommerceStandIn


@pytest.fixture(scope="session")
def store_tls(tmp_path_factory: pytest.TempPathFactory) -> StandInTLS:
    return make_tls(Path(tmp_path_factory.mktemp("store-tls")))


@pytest.fixture
async def woo_api(store_tls: StandInTLS) -> AsyncIterator[WooCommerceStandIn]:
    api = WooCommerceStandIn(store_tls)
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def shopify_api(store_tls: StandInTLS) -> AsyncIterator[ShopifyStandIn]:
    api = ShopifyStandIn(store_tls)
    await api.start()
    yield api
    await api.stop()


__all__ = ["shopify_api", "store_tls", "woo_api"]
