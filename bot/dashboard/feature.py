"""The dashboard feature: `/dashboard` sends a moderator a one-time sign-in link, privately."""

from __future__ import annotations

from bot.commands.registry import CommandContext, CommandSpec
from bot.core import Core
from bot.dashboard.access import Access, Grant
from bot.dashboard.audit import AuditLog
from bot.dashboard.jobs import Jobs
from bot.errors import UserInputError
from bot.events import Outbound, Privilege
from bot.settings import Settings


def dashboard_base_url(settings: Settings) -> str | None:
    """Where browsers reach the dashboard: the configured public address, else the local
    listener; None when no process serves one."""
    if settings.dashboard_url:
        return settings.dashboard_url.rstrip("/")
    if settings.dashboard_port:
        host = settings.dashboard_host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{settings.dashboard_port}"
    return None


def signin_url(base: str, merchant: str, token: str) -> str:
    return f"{base}/m/{merchant}/signin/{token}"


class DashboardFeature:
    """Built from the Core like every feature; the web front end (adapters/web) finds it on
    the app and uses its `access`, `audit` and `jobs`."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.jobs: Jobs | None = None

    @property
    def access(self) -> Access:
        s = self.core.settings
        return Access(self.core.store.redis, s.dashboard_link_ttl_s, s.dashboard_session_ttl_s)

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.core.store.redis)

    def commands(self) -> list[CommandSpec]:
        return [CommandSpec(
            "dashboard", "Get a private one-time link to the moderators' web dashboard.",
            self.dashboard, privilege=Privilege.MODERATOR, private=True)]

    async def start(self) -> None:
        self.jobs = Jobs(self.core.store.redis)

    async def stop(self) -> None:
        if self.jobs is not None:
            await self.jobs.wait_all()

    async def link_for(self, merchant: str, member: str, name: str,
                       privilege: Privilege) -> str:
        """A sign-in link for one moderator of one merchant (the command and the CLI).

        Raises:
            UserInputError: no dashboard address is configured.
        """
        base = dashboard_base_url(self.core.settings)
        if base is None:
            raise UserInputError("The web dashboard is not switched on: set "
                                 "SHOPKEEP_DASHBOARD_PORT (or SHOPKEEP_DASHBOARD_URL where "
                                 "another process serves it).")
        token = await self.access.issue_link(Grant(merchant, member, name or member,
                                                   int(privilege)))
        return signin_url(base, merchant, token)

    async def dashboard(self, ctx: CommandContext) -> Outbound:
        member = ctx.inbound.member
        url = await self.link_for(ctx.merchant, member.key, member.display_name,
                                  ctx.privilege)
        minutes = max(1, self.core.settings.dashboard_link_ttl_s // 60)
        return Outbound(
            text=f"Your dashboard sign-in link (works once, for {minutes} minutes; don't "
                 f"share it):\n{url}", private=True)

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        """/forgetme: the audit log keeps the actions, with a pseudonym for the member."""
        await self.audit.forget_member(merchant, member_key, pseudonym)
