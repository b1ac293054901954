"""Tenancy as `bot.app` wires it: the setup and `/community` commands, and the communities
that `SHOPKEEP_COMMUNITIES` approves at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.commands.registry import CommandSpec
from bot.tenancy.commands import TenancyCommands

if TYPE_CHECKING:
    from bot.core import Core


class TenancyFeature:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._commands = TenancyCommands(core.tenancy)

    def commands(self) -> list[CommandSpec]:
        return self._commands.specs()

    async def start(self) -> None:
        settings = self.core.settings
        await self.core.tenancy.approve_configured(settings.communities, settings.merchant)

    async def stop(self) -> None:
        return None
