"""The command pipeline without a language model: real store, registry, router, console."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis

from adapters.console import ConsoleAdapter
from bot.commands.builtin import BuiltinCommands
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandRegistry, CommandSpec
from bot.events import Inbound, Outbound, Privilege
from bot.ops.metrics import METRICS
from bot.router import Router
from bot.storage.store import Store
from bot.tenancy import Tenancy

STORAGE_DOWN = "I can't reach my memory right now"
GENERIC_ERROR = "something went wrong on my side"


async def _say(ctx: CommandContext) -> str:
    await asyncio.sleep(float(ctx.args.get("pause") or 0))  # time for a fault to land mid-way
    return f"said {ctx.args['n']}"


SAY = CommandSpec("say", "Answer with the number given (after `pause` seconds).", _say,
                  args=(Arg("n", ArgKind.INT), Arg("pause", ArgKind.FLOAT, required=False)))
"""A command whose answers are easy to count: `/say 7 0.5` answers "said 7" after 0.5 s."""


class CommandPipeline:
    """Everything `App` wires for commands (the builtins), minus the LM: what the fault and
    fuzz tests drive when the model is not what they are about. Acts as an AdapterHost."""

    def __init__(self, redis_url: str, extra: Sequence[CommandSpec] = ()) -> None:
        self.store = Store(redis_url)
        self.registry = CommandRegistry()
        self.registry.register_all(BuiltinCommands(self.registry, self.store).specs())
        self.registry.register_all(extra)
        self.tenancy = Tenancy(self.store)
        self.router = Router(self.registry, self.tenancy)

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        await self.router.drain()
        await self.store.stop()

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        return await self.router.handle(inbound)

    @property
    def commands(self) -> Sequence[CommandSpec]:
        return self.registry.all()

    @property
    def redis(self) -> aioredis.Redis:
        return self.store.redis

    async def console(self, user: str = "mod", role: Privilege = Privilege.MODERATOR
                      ) -> ConsoleAdapter:
        console = ConsoleAdapter(user=user, role=role, interactive=False)
        await console.start(self)
        return console


async def snapshot(redis_url: str, pattern: str = "sk:*") -> dict[bytes, bytes | None]:
    """Every matching key's DUMP (type, value and encoding), to prove nothing changed."""
    client = aioredis.from_url(redis_url)  # bytes: a DUMP is not text
    try:
        keys = sorted([k async for k in client.scan_iter(match=pattern)])
        return {key: await client.dump(key) for key in keys}
    finally:
        await client.aclose()


def sample(name: str, **labels: str) -> float:
    """A metric's current value in Shopkeep's registry (0 when never recorded)."""
    return METRICS.registry.get_sample_value(name, labels) or 0.0
