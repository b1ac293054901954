"""The operations HTTP server: /healthz (alive), /readyz (Redis answers, LM loaded), /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.commands.registry import CommandSpec
from bot.core import Core
from bot.ops.instrument import InstrumentedLM
from bot.ops.metrics import METRICS, Metrics, record_redis_error, watch_event_loop
from bot.storage.store import CONNECTION_ERRORS, Store
from lm_service.api import LMClient, LMError

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 2.0


class OpsServer:
    """Serves the three endpoints on `host:port` (port 0 picks a free one, for tests).

    Readiness runs every check with a short timeout; a stopping process answers 503 at once
    so that a load balancer or Kubernetes stops sending it work before it goes away.
    """

    def __init__(self, checks: dict[str, Check], host: str = "127.0.0.1", port: int = 0,
                 metrics: Metrics = METRICS) -> None:
        self.checks = checks
        self.host = host
        self.port = port
        self.metrics = metrics
        self.draining = False
        self._started_at = time.monotonic()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        log.info("health and metrics on %s (/healthz /readyz /metrics)", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def readiness(self) -> dict[str, bool]:
        """Each check's verdict; a check that raises or exceeds its timeout is False."""
        results: dict[str, bool] = {}
        for name, check in self.checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_S))
            except (TimeoutError, Exception):
                results[name] = False
        return results

    async def _healthz(self, request: web.Request) -> web.Response:
        uptime = round(time.monotonic() - self._started_at, 1)
        return web.json_response({"status": "ok", "uptime_s": uptime})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            self.metrics.ready.set(0)
            return web.json_response({"ready": False, "draining": True}, status=503)
        checks = await self.readiness()
        ready = all(checks.values())
        self.metrics.ready.set(1 if ready else 0)
        return web.json_response({"ready": ready, "checks": checks},
                                 status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def redis_check(store: Store) -> Check:
    """Redis answers a PING (the store's client, looked up when asked: it starts later)."""
    return ping_check(lambda: store.redis)


def ping_check(client: Callable[[], Any]) -> Check:
    """The Redis client `client()` answers a PING; a connection error counts in the metrics."""

    async def check() -> bool:
        try:
            return bool(await client().ping())
        except CONNECTION_ERRORS:
            record_redis_error("readyz")
            return False

    return check


def lm_check(lm: LMClient) -> Check:
    """Loaded = started through the App's instrumented client; any other client is probed
    with a one-word embedding (cheap, and proves the model answers)."""

    async def check() -> bool:
        if isinstance(lm, InstrumentedLM):
            return lm.started
        try:
            vectors = await lm.embed(["ready"])
        except LMError:
            return False
        return len(vectors) == 1

    return check


class OpsRunner:
    """The ops server on `metrics_port` with these readiness checks (none without a port),
    and the event-loop lag probe, started and stopped together."""

    def __init__(self, settings: Any, checks: dict[str, Check]) -> None:
        self.server: OpsServer | None = None
        self._watch: asyncio.Task[None] | None = None
        if settings.metrics_port is not None:
            self.server = OpsServer(checks, host=settings.metrics_host,
                                    port=settings.metrics_port)

    async def start(self) -> None:
        self._watch = asyncio.create_task(watch_event_loop(), name="event-loop-lag")
        if self.server is not None:
            await self.server.start()

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self.server is not None:
            await self.server.stop()

    def drain(self) -> None:
        """From now on /readyz answers 503: the process is going away."""
        if self.server is not None:
            self.server.draining = True


@contextlib.asynccontextmanager
async def worker_ops(settings: Any, redis_url: str, serving: asyncio.Event,
                     stopping: asyncio.Event) -> AsyncIterator[OpsServer | None]:
    """The ops server of `shopkeep lm-worker` while the block runs, when `metrics_port` is set:
    ready when Redis answers and the worker serves (`serving` set, `stopping` not)."""
    if settings.metrics_port is None:
        yield None
        return
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)

    async def worker_serves() -> bool:
        return serving.is_set() and not stopping.is_set()

    ops = OpsRunner(settings, {"redis": ping_check(lambda: client), "lm": worker_serves})
    await ops.start()
    try:
        yield ops.server
    finally:
        ops.drain()
        await ops.stop()
        await client.aclose()


class OpsFeature(OpsRunner):
    """Runs the ops server for the App when `metrics_port` is set; nothing otherwise."""

    def __init__(self, core: Core) -> None:
        super().__init__(core.settings, {"redis": redis_check(core.store),
                                         "lm": lm_check(core.lm)})

    def commands(self) -> list[CommandSpec]:
        return []
