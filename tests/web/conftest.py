"""Dashboard fixtures: the whole app (real Redis, real models) with the console adapter and
the web dashboard on a free loopback port, and helpers to sign in as a moderator."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.console import ConsoleAdapter
from adapters.web import WebDashboard
from bot.app import App
from bot.events import Privilege
from bot.settings import load_settings
from lm_service.api import LMClient
from tests.support.redis_server import free_port

LINK = re.compile(r"(http://\S+/m/[a-z0-9_-]+/signin/\S+)")


@dataclass
class Running:
    app: App
    web: WebDashboard
    console: ConsoleAdapter

    @property
    def url(self) -> str:
        return self.web.url

    async def link(self, user: str = "mod", role: Privilege = Privilege.MODERATOR) -> str:
        """Ask for a sign-in link with /dashboard in the console, as a moderator would."""
        [reply] = await self.console.say("/dashboard", role=role, user=user)
        assert reply.private, reply
        found = LINK.search(reply.text)
        assert found, reply.text
        return found.group(1)


@contextlib.asynccontextmanager
async def running_dashboard(redis_url: str, data_dir: Path, lm: LMClient,
                            merchant: str = "default", **settings: Any) -> AsyncIterator[Running]:
    port = free_port()
    settings.setdefault("demo_shop", False)
    console = ConsoleAdapter(user="mod", interactive=False, merchant=merchant)
    web = WebDashboard("127.0.0.1", port)
    app = App(load_settings(redis_url=redis_url, data_dir=data_dir, dashboard_port=port,
                            merchant=merchant, **settings),
              adapters=[console], lm=lm, front_ends=[web])
    await app.start()
    try:
        yield Running(app, web, console)
    finally:
        await app.stop()


@pytest.fixture
async def dash(redis_url: str, redis_client: object, tmp_path: Path,
               lm_client: LMClient) -> AsyncIterator[Running]:
    async with running_dashboard(redis_url, tmp_path, lm_client) as running:
        yield running


async def sign_in(client: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open the link's page and press its button, as a browser does."""
    page = await client.get(link)
    assert page.status_code == 200, page.text
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    return await client.post(link, data={"nonce": nonce.group(1)})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)
