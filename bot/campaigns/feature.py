"""The campaigns feature as `bot.app` wires it: commands, scheduler, channel observer."""

from __future__ import annotations

import logging

from bot.campaigns.commands import CampaignCommands
from bot.campaigns.posts import PostCommands
from bot.campaigns.repository import CampaignRepo
from bot.campaigns.runner import CampaignRunner, RunPolicy
from bot.campaigns.scheduler import CampaignScheduler
from bot.campaigns.writer import ContentWriter
from bot.commands.registry import CommandContext, CommandSpec
from bot.core import Core
from bot.events import Inbound
from bot.safety import SafetyChain, default_filters
from bot.tenancy import looks_like_question

log = logging.getLogger(__name__)


class CampaignFeature:
    """Content posts and scheduled campaigns. `start()` starts this process's scheduler."""

    def __init__(self, core: Core, safety: SafetyChain | None = None) -> None:
        self.core = core
        s = core.settings
        self.repo = CampaignRepo(core.store)
        if safety is None:
            safety = SafetyChain(default_filters(s.max_question_chars, s.deny_list))
        self.writer = ContentWriter(core.lm, safety, attempts=s.campaign_generation_attempts,
                                    backoff_s=s.campaign_retry_backoff_s)
        self.runner = CampaignRunner(
            core.store, core.outbox, self.repo, self.writer,
            RunPolicy(lock_ttl_s=s.campaign_lock_ttl_s, dm_cap=s.campaign_dm_cap,
                      dm_cap_window_s=int(s.campaign_dm_cap_days * 86400)))
        self.campaign_commands = CampaignCommands(self)
        self.post_commands = PostCommands(self)
        self._scheduler: CampaignScheduler | None = None

    @property
    def scheduler(self) -> CampaignScheduler:
        if self._scheduler is None:
            raise RuntimeError("the campaigns feature has not been started")
        return self._scheduler

    def commands(self) -> list[CommandSpec]:
        return self.campaign_commands.specs() + self.post_commands.specs()

    async def start(self) -> None:
        s = self.core.settings
        url = self.core.store.url
        if url is None:
            raise RuntimeError("the store must be started before the campaigns feature")
        self._scheduler = CampaignScheduler(
            url, self.repo, self.runner, misfire_grace_s=s.campaign_misfire_grace_s,
            coalesce=s.campaign_coalesce, poll_s=s.campaign_poll_s, fire=s.scheduled_jobs,
            # A dead holder's run is looked for once per lease: it restarts within about
            # one lease of the holder's death (the lock's expiry) plus this check.
            stall_check_s=min(60.0, s.campaign_lock_ttl_s))
        await self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler is not None:
            await self._scheduler.stop()
            self._scheduler = None

    async def observe(self, inbound: Inbound, merchant: str) -> None:
        """Remember the channel (campaigns may target channels the bot has seen) and, for the
        weekly roundup, what members asked. Never raises: the router runs it in the background."""
        if inbound.community is None:
            return
        try:
            await self.repo.note_channel(merchant, inbound.community.channel_key,
                                         inbound.community)
            if looks_like_question(inbound.text) and len(inbound.text) >= 10:
                await self.repo.note_question(merchant, inbound.text.strip(), inbound.sent_at)
        except Exception:
            log.exception("campaigns could not note message %s", inbound.message_id)

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        """/forgetme: drop the offers opt-in and put the pseudonym in the delivery logs."""
        await self.repo.forget_member(merchant, member_key, pseudonym)

    async def note_context(self, ctx: CommandContext) -> None:
        """A command typed in a channel proves the channel exists: note it as a target."""
        if ctx.inbound.community is not None:
            await self.repo.note_channel(ctx.merchant, ctx.inbound.community.channel_key,
                                         ctx.inbound.community)
