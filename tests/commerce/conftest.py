"""Commerce test fixtures: the store stand-ins and a started Store on the test Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.storage.store import Store
from tests.commerce.fixtures import *  # noqa: F403  (store_tls, woo_api, shopify_api)


@pytest.fixture
async def store(redis_url: str, redis_client: aioredis.Redis,
                tmp_path: Path) -> AsyncIterator[Store]:
    started = Store(redis_url, tmp_path)
    await started.start()
    await started.register_merchant("default")
    yield started
    await started.stop()
