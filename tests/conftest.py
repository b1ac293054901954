"""Fixtures every test may use. Tests run against a real Redis server, never a mock of it.

`SHOPKEEP_TEST_REDIS_URL` points the tests at a server you already run; otherwise one is
started on loopback for the session. If none can be reached the tests fail, loudly.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from lm_service.api import LMClient
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("SHOPKEEP_TEST_REDIS_URL")
    if given:
        try:
            redis.Redis.from_url(given, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            pytest.fail(f"SHOPKEEP_TEST_REDIS_URL={given} does not answer: {exc}")
        yield given
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_sync(redis_url: str) -> Iterator[redis.Redis]:
    """A flushed database for this test (sync client)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def redis_client(redis_url: str, redis_sync: redis.Redis) -> AsyncIterator[aioredis.Redis]:
    """A flushed database for this test (asyncio client)."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def lm_client() -> Iterator[LMClient]:
    """The real in-process engine (SmolLM2-135M + all-MiniLM-L6-v2), loaded once per session.

    The converted model is cached in `SHOPKEEP_TEST_MODEL_CACHE` (default `var/test-models`)
    so that only the first run pays for dequantising the GGUF.
    """
    from lm_service.local import InProcessLMClient

    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    client = InProcessLMClient(cache_dir=cache)
    asyncio.run(client.start())
    try:
        yield client
    finally:
        asyncio.run(client.stop())
