"""The growth feature as the app wires it: commands, the message observer, start and stop."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from bot.commands.registry import CommandSpec
from bot.core import Core
from bot.growth.commands import GrowthCommands
from bot.growth.digest import schedule_digest, set_job_core
from bot.growth.privacy import forget_member
from bot.growth.services import Growth
from bot.storage.keys import merchants

log = logging.getLogger(__name__)


class SchedulerOwner(Protocol):
    """The campaigns feature: once started, `.scheduler.scheduler` is its APScheduler."""

    @property
    def scheduler(self) -> Any: ...


class GrowthFeature(Growth):
    """Referrals, account linking, analytics, FAQ gaps and the weekly digest.

    Given the campaigns feature (started before this one), the weekly digest of every
    merchant is a job in the campaigns' scheduler and its shared Redis job store.
    """

    def __init__(self, core: Core, campaigns: SchedulerOwner | None = None) -> None:
        super().__init__(core)
        self._commands = GrowthCommands(self)
        self._campaigns = campaigns

    def commands(self) -> list[CommandSpec]:
        return self._commands.specs()

    async def start(self) -> None:
        # Lets a persistent scheduler run `run_weekly_digest` by name after a restart.
        set_job_core(self.core)
        if self._campaigns is None or not self.settings.digest_enabled:
            return
        scheduler = self._campaigns.scheduler.scheduler
        known = {str(m) for m in await self.core.store.redis.smembers(merchants())}
        for merchant in sorted(known | {self.settings.merchant}):
            schedule_digest(scheduler, self.core, merchant)

    async def stop(self) -> None:
        set_job_core(None)

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        """/forgetme (profiles feature): pseudonymise the member in referrals and analytics."""
        await forget_member(self.core.store.redis, merchant, member_key, pseudonym)
