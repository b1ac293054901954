"""Fixtures for the adapter tests (Telegram fixtures carry a `tg_` prefix)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.telegram import TelegramAdapter
from bot.commands.builtin import BuiltinCommands
from bot.commands.registry import CommandRegistry, CommandSpec
from bot.events import CommunityRef, Inbound, Outbound
from bot.ports import AdapterHost
from bot.router import Router
from bot.storage.store import Store
from bot.tenancy import Tenancy
from tests.standins.telegram_api import TelegramStandIn
from tests.support.tenancy import approve

# The groups the Telegram tests write in are the shop's own: approved for the default merchant
# by `tg_host`. A stranger's group (tests/adapters/test_telegram_tenancy.py) is not among them.
SHOP_GROUPS = (-100900, -100901, -1001234, -100555, -100777, -1001, -1002, -1003)


class TgCommandHost:
    """The core's command path (registry, built-in commands, tenancy, router) on the test
    Redis, without the conversation handler: for tests of the platform edge that need no
    model. `seen` records every Inbound the adapter delivered."""

    def __init__(self, store: Store, admin_ids: Sequence[str] = ()) -> None:
        self.store = store
        self.registry = CommandRegistry()
        self.registry.register_all(BuiltinCommands(self.registry, store).specs())
        self.tenancy = Tenancy(store, "default", tuple(admin_ids))
        self.router = Router(self.registry, self.tenancy)
        self.seen: list[Inbound] = []

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        self.seen.append(inbound)
        return await self.router.handle(inbound)

    async def community_moved(self, old: CommunityRef, new: CommunityRef) -> None:
        await self.tenancy.community_moved(old, new)

    @property
    def commands(self) -> Sequence[CommandSpec]:
        return self.registry.all()

    @property
    def redis(self) -> aioredis.Redis:
        return self.store.redis


@pytest.fixture
async def tg_api() -> AsyncIterator[TelegramStandIn]:
    """A fresh Bot API stand-in on 127.0.0.1."""
    api = TelegramStandIn()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def tg_host(redis_url: str, redis_client: aioredis.Redis,
                  tmp_path: Path) -> AsyncIterator[TgCommandHost]:
    store = Store(redis_url, tmp_path)
    await store.start()
    await store.register_merchant("default")
    await approve(store.redis, *(f"telegram:{chat}" for chat in SHOP_GROUPS))
    yield TgCommandHost(store, admin_ids=("telegram:999",))
    await store.stop()


TgAdapterFactory = Callable[..., Awaitable[TelegramAdapter]]


@pytest.fixture
async def tg_adapter(tg_api: TelegramStandIn,
                     tg_host: TgCommandHost) -> AsyncIterator[TgAdapterFactory]:
    """Start a real TelegramAdapter (PTB over HTTP) against the stand-in; stopped at the end.
    Call it again after `stop()` to simulate a restart."""
    started: list[TelegramAdapter] = []

    async def start(host: AdapterHost | None = None, **options: Any) -> TelegramAdapter:
        options.setdefault("poll_timeout_s", 1)
        adapter = TelegramAdapter(tg_api.token, tg_api.base_url, **options)
        await adapter.start(host or tg_host)
        started.append(adapter)
        return adapter

    yield start
    for adapter in started:
        await adapter.stop(drain_s=5)
