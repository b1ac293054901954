"""Fixtures for the profiles tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from bot.storage.store import Store


@pytest.fixture
async def store(redis_url: str, redis_sync: redis.Redis) -> AsyncIterator[Store]:
    """A started Store on the flushed test database."""
    started = Store(redis_url)
    await started.start()
    yield started
    await started.stop()
