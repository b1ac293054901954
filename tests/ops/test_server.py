"""The ops HTTP server over real HTTP: liveness, readiness that follows Redis, the metrics text."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.ops.server import OpsServer, redis_check
from bot.storage.store import Store
from tests.support.redis_server import RedisServer


@pytest.fixture
async def crashable() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_readiness_follows_redis_and_draining(crashable: RedisServer) -> None:
    store = Store(crashable.url)
    await store.start()
    server = OpsServer({"redis": redis_check(store)})
    await server.start()
    try:
        assert server.port > 0
        status, _, body = await _get(server.url + "/readyz")
        assert status == 200 and '"redis": true' in body
        await asyncio.to_thread(crashable.kill)
        status, _, body = await _get(server.url + "/readyz")
        assert status == 503 and '"redis": false' in body
        health, _, _ = await _get(server.url + "/healthz")
        assert health == 200  # alive, merely not ready: no restart loop while Redis is away
        await asyncio.to_thread(crashable.start)
        status, _, _ = await _get(server.url + "/readyz")
        assert status == 200
        server.draining = True
        status, _, body = await _get(server.url + "/readyz")
        assert status == 503 and '"draining": true' in body
    finally:
        await server.stop()
        await store.stop()


async def test_metrics_exposition_names_every_family() -> None:
    server = OpsServer({})
    await server.start()
    try:
        status, content_type, body = await _get(server.url + "/metrics")
    finally:
        await server.stop()
    assert status == 200 and content_type.startswith("text/plain")
    for family in ("shopkeep_messages_in", "shopkeep_messages_out", "shopkeep_replies",
                   "shopkeep_reply_latency_seconds", "shopkeep_lm_queue_depth",
                   "shopkeep_lm_batch_size", "shopkeep_lm_tokens", "shopkeep_redis_errors",
                   "shopkeep_campaign_runs", "shopkeep_rate_limit_waits",
                   "process_resident_memory_bytes"):
        assert re.search(rf"^# TYPE {family}(_total)? ", body, re.MULTILINE), family


async def test_a_failing_check_is_not_ready_rather_than_an_error() -> None:
    async def broken() -> bool:
        raise RuntimeError("probe blew up")

    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    server = OpsServer({"broken": broken, "hangs": hangs})
    await server.start()
    try:
        status, _, body = await _get(server.url + "/readyz")
    finally:
        await server.stop()
    assert status == 503
    assert '"broken": false' in body and '"hangs": false' in body
