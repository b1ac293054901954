"""The long-lived parts every feature shares, handed to each feature when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.commands.registry import CommandRegistry, CommandSpec
from bot.outbox import Outbox
from bot.settings import Settings
from bot.storage.store import Store
from bot.tenancy import Tenancy
from lm_service.api import LMClient


@dataclass
class Core:
    settings: Settings
    store: Store
    lm: LMClient
    tenancy: Tenancy
    registry: CommandRegistry
    outbox: Outbox


@runtime_checkable
class Feature(Protocol):
    """A part of the product (knowledge, profiles, campaigns...) wired in by `bot.app`."""

    def commands(self) -> list[CommandSpec]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
