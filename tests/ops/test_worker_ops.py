"""`shopkeep lm-worker`'s ops server: the probes the deploy files point at its port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp

from bot.ops.server import worker_ops
from lm_service.local import InProcessLMClient
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


async def _status(url: str) -> int | None:
    """The HTTP status, or None while nothing listens."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
                http.get(url) as reply:
            return reply.status
    except aiohttp.ClientConnectionError:
        return None


async def test_readiness_follows_serving_and_stopping(redis_url: str) -> None:
    settings = SimpleNamespace(metrics_port=free_port(), metrics_host="127.0.0.1")
    serving, stopping = asyncio.Event(), asyncio.Event()
    async with worker_ops(settings, redis_url, serving, stopping) as server:
        assert server is not None
        assert await _status(server.url + "/healthz") == 200
        assert await _status(server.url + "/readyz") == 503  # still loading the models
        serving.set()
        assert await _status(server.url + "/readyz") == 200
        assert await _status(server.url + "/metrics") == 200
        stopping.set()
        assert await _status(server.url + "/readyz") == 503  # draining: send no more work
    assert await _status(server.url + "/healthz") is None  # closed with the block


async def test_no_port_no_server(redis_url: str) -> None:
    settings = SimpleNamespace(metrics_port=None, metrics_host="127.0.0.1")
    async with worker_ops(settings, redis_url, asyncio.Event(), asyncio.Event()) as server:
        assert server is None


async def test_the_real_worker_process_becomes_ready_and_stops_on_sigterm(
        redis_url: str, lm_client: InProcessLMClient, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # The session engine's converted models and kernels: the worker starts in seconds.
    (data / "models").symlink_to(lm_client.engine.config.cache_dir)
    port = free_port()
    env = {**os.environ, "SHOPKEEP_REDIS_URL": redis_url, "SHOPKEEP_METRICS_PORT": str(port),
           "SHOPKEEP_DATA_DIR": str(data)}
    errors = (tmp_path / "stderr").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "lm-worker"], cwd=REPO,
                               env=env, stdout=subprocess.DEVNULL, stderr=errors)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while await _status(base + "/readyz") != 200:
            assert process.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker never became ready"
            await asyncio.sleep(0.2)
        assert await _status(base + "/healthz") == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        errors.close()
