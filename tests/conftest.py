"""Fixtures every test may use. Tests run against a real Redis server, never a mock of it.

`SHOPKEEP_TEST_REDIS_URL` points the tests at a server you already run; otherwise one is
started on loopback for the session. If none can be reached the tests fail, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from lm_service.api import LMClient
from tests.support.redis_server import RedisServer

STUCK_REPORT_S = float(os.environ.get("SHOPKEEP_TEST_STUCK_REPORT_S", "240"))


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


@pytest.fixture(autouse=True)
def _stuck_test_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """An async test still running after 4 minutes prints every asyncio task's stack to
    stderr, so a hang in CI shows what each task awaits (faulthandler shows only threads, and
    a loop idling on a future nobody resolves looks the same from outside)."""
    if not asyncio.iscoroutinefunction(request.function):
        yield
        return
    # pytest-asyncio's runner for function-scoped loops: the loop the test will run in.
    loop = request.getfixturevalue("_function_scoped_runner").get_loop()
    done = threading.Event()

    def report() -> None:
        out = sys.__stderr__
        if out is None:
            return
        out.write(f"\n===== asyncio tasks of {request.node.nodeid} after "
                  f"{STUCK_REPORT_S:.0f} s =====\n")
        for task in asyncio.all_tasks(loop):
            buffer = io.StringIO()
            task.print_stack(limit=40, file=buffer)
            out.write(buffer.getvalue() + "-----\n")
        out.flush()

    def watch() -> None:
        if not done.wait(STUCK_REPORT_S):
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(report)

    threading.Thread(target=watch, name="stuck-test-report", daemon=True).start()
    yield
    done.set()
