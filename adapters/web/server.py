"""Serves the dashboard from the bot's own event loop (uvicorn), or on its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from adapters.web.routes import build_asgi_app

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the bot process owns SIGINT and SIGTERM and
    stops the dashboard with everything else."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebDashboard:
    """The moderators' dashboard as a front end of a running `App` (`App(front_ends=[...])`).

    `port=0` picks a free port (tests); `url` is the address actually bound.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.host = host
        self.port = port
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, app: App) -> None:
        config = uvicorn.Config(build_asgi_app(app), host=self.host, port=self.port,
                                log_config=None, access_log=False, lifespan="off",
                                proxy_headers=True, server_header=False)
        # The socket is bound here: a taken port is a plain OSError for the caller, where
        # uvicorn binding it would call sys.exit() inside the bot's event loop.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family, backlog=512)
        self.port = int(sock.getsockname()[1])
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                raise RuntimeError(f"the dashboard could not start on {self.url}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the dashboard did not start on {self.url}")
            await asyncio.sleep(0.02)
        log.info("moderators' dashboard on %s", self.url)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 10)
        self._server, self._task = None, None
