"""The growth feature as the app wires it: commands, the message observer, start and stop."""

from __future__ import annotations

from bot.commands.registry import CommandSpec
from bot.core import Core
from bot.growth.commands import GrowthCommands
from bot.growth.digest import set_job_core
from bot.growth.privacy import forget_member
from bot.growth.services import Growth


class GrowthFeature(Growth):
    """Referrals, account linking, analytics, FAQ gaps and the weekly digest."""

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self._commands = GrowthCommands(self)

    def commands(self) -> list[CommandSpec]:
        return self._commands.specs()

    async def start(self) -> None:
        # Lets a persistent scheduler run `run_weekly_digest` by name after a restart.
        set_job_core(self.core)

    async def stop(self) -> None:
        set_job_core(None)

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        """/forgetme (profiles feature): pseudonymise the member in referrals and analytics."""
        await forget_member(self.core.store.redis, merchant, member_key, pseudonym)
