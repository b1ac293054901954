"""Fixtures for the Discord adapter tests: the stand-in Discord, and a core to answer it.

Imported by the Discord test modules (not a shared conftest: the Telegram tests live in the
same folder). The core here is the real router, registry, tenancy and built-in commands on
the test Redis, plus a few test-only commands that stand for long, slow and button-bearing
answers — the core's edge the adapter must carry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from adapters.discord import DiscordAdapter
from bot.commands.builtin import BuiltinCommands
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandRegistry, CommandSpec
from bot.events import Button, Citation, CommunityRef, MembershipChange, Outbound, Privilege
from bot.router import Router
from bot.storage.store import Store
from bot.tenancy import Tenancy
from tests.standins.discord_api import DiscordStandIn
from tests.support.tenancy import approve

LONG_SENTENCE = "Our trail tents pitch in five minutes and pack down smaller than a loaf. "


SIZES = tuple(f"eu-{n}" for n in range(30, 50)) + tuple(f"us-{n}" for n in range(4, 14))


def long_text(chars: int = 4500) -> str:
    return (LONG_SENTENCE * (chars // len(LONG_SENTENCE) + 1))[:chars]


class TestOnlyCommands:
    """Commands whose answers exercise the adapter: long, slow, late, with buttons."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def specs(self) -> list[CommandSpec]:
        return [
            CommandSpec("longtext", "Answer with 4,500 characters.", self.longtext),
            CommandSpec("report", "A slow report (declared slow).", self.report, slow=True,
                        args=(Arg("seconds", ArgKind.FLOAT, "how long it takes"),)),
            CommandSpec("ponder", "Not declared slow but takes its time.", self.ponder,
                        args=(Arg("seconds", ArgKind.FLOAT, "how long it takes"),)),
            CommandSpec("showcase", "Products with links and a button.", self.showcase),
            CommandSpec("audit", "A slow moderators' audit.", self.ponder, slow=True,
                        privilege=Privilege.MODERATOR,
                        args=(Arg("seconds", ArgKind.FLOAT, "how long it takes"),)),
            CommandSpec("upload", "Read an attached file.", self.upload,
                        args=(Arg("file", ArgKind.ATTACHMENT, "a CSV file"),
                              Arg("note", ArgKind.STR, "a word", required=False))),
            CommandSpec("size", "Pick one of many sizes.", self.size,
                        args=(Arg("size", ArgKind.CHOICE, "a size", choices=SIZES),)),
            CommandSpec("echo", "Repeat text.", self.echo,
                        args=(Arg("text", ArgKind.TEXT, "what to repeat"),)),
        ]

    async def longtext(self, ctx: CommandContext) -> str:
        self.calls.append("longtext")
        return long_text()

    async def report(self, ctx: CommandContext) -> str:
        self.calls.append("report")
        await asyncio.sleep(ctx.args["seconds"])
        return "Report ready: 3 campaigns, 41 clicks."

    async def ponder(self, ctx: CommandContext) -> str:
        self.calls.append("ponder")
        await asyncio.sleep(ctx.args["seconds"])
        return "Pondered it: the Trailhead tent."

    async def showcase(self, ctx: CommandContext) -> Outbound:
        self.calls.append("showcase")
        return Outbound(
            "Two tents for the weekend.",
            citations=(Citation("product", "TENT-2P", "Trailhead 2P Tent",
                                "https://shop.example/tent-2p"),
                       Citation("faq", "returns", "Returns policy")),
            buttons=(Button("Tell me more", "/echo more about tents"),
                     Button("Open shop", "", url="https://shop.example")))

    async def upload(self, ctx: CommandContext) -> str:
        self.calls.append("upload")
        file = ctx.args["file"]
        first = file.data.decode().splitlines()[0]
        return f"{file.filename}: {len(file.data)} bytes, header {first!r}, note {ctx.args['note']}"

    async def size(self, ctx: CommandContext) -> str:
        return f"size {ctx.args['size']}"

    async def echo(self, ctx: CommandContext) -> str:
        self.calls.append("echo")
        return f"echo: {ctx.args['text']}"


@dataclass
class CoreHost:
    """The AdapterHost the adapter starts with: the real router over the real registry."""

    router: Router
    registry: CommandRegistry
    store: Store
    changes: list[MembershipChange] = field(default_factory=list)  # joins and leaves seen

    async def handle(self, inbound):  # type: ignore[no-untyped-def]
        return await self.router.handle(inbound)

    async def membership(self, change: MembershipChange) -> None:
        self.changes.append(change)

    async def community_moved(self, old: CommunityRef, new: CommunityRef) -> None:
        await self.router.tenancy.community_moved(old, new)

    @property
    def commands(self) -> Sequence[CommandSpec]:
        return self.registry.all()

    @property
    def redis(self) -> aioredis.Redis:
        return self.store.redis


@dataclass
class DiscordRig:
    standin: DiscordStandIn
    adapter: DiscordAdapter
    host: CoreHost
    extra: TestOnlyCommands


@pytest.fixture
async def dc_standin() -> AsyncIterator[DiscordStandIn]:
    standin = DiscordStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def dc_host(redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
                  dc_standin: DiscordStandIn) -> AsyncIterator[CoreHost]:
    store = Store(redis_url, tmp_path)
    await store.start()
    await approve(store.redis, f"discord:{dc_standin.guild_id}")  # the shop's own server
    registry = CommandRegistry()
    registry.register_all(BuiltinCommands(registry, store).specs())
    host = CoreHost(Router(registry, Tenancy(store)), registry, store)
    yield host
    await host.router.drain()
    await store.stop()


@pytest.fixture
async def dc_rig(dc_standin: DiscordStandIn, dc_host: CoreHost) -> AsyncIterator[DiscordRig]:
    extra = TestOnlyCommands()
    dc_host.registry.register_all(extra.specs())
    adapter = DiscordAdapter(dc_standin.token, api_url=dc_standin.api_url,
                             gateway_url=dc_standin.gateway_url, defer_after_s=0.5,
                             guild_ready_timeout=0.1)
    await adapter.start(dc_host)
    yield DiscordRig(dc_standin, adapter, dc_host, extra)
    await adapter.stop()


__all__ = ["dc_host", "dc_rig", "dc_standin"]  # the fixtures, for `import *` in tests
