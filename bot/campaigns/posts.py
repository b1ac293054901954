"""`/post draft|regenerate|edit|publish|schedule`: one-off posts a moderator reviews."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.campaigns.content import post_request
from bot.campaigns.models import Campaign, notify_channel_of
from bot.campaigns.schedule import describe_runs, parse_schedule
from bot.campaigns.writer import POST_KINDS, GenerationFailed
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.errors import UserInputError
from bot.events import Button, Outbound, Privilege

if TYPE_CHECKING:
    from bot.campaigns.feature import CampaignFeature

_ID = Arg("draft", ArgKind.STR, "the draft id shown with the draft")
_TARGETS = Arg("targets", ArgKind.STR, "here, discord:<channel>, telegram:<chat>, dm")


class PostCommands:
    def __init__(self, feature: CampaignFeature) -> None:
        self.f = feature

    def specs(self) -> list[CommandSpec]:
        mod = Privilege.MODERATOR
        return [
            CommandSpec("post draft", "Draft a post (spotlight, tips, roundup, question, "
                        "promotion); only you see it.", self.draft,
                        args=(Arg("kind", ArgKind.CHOICE, choices=POST_KINDS),
                              Arg("topic", ArgKind.TEXT, "a product, category or theme",
                                  required=False, default="")),
                        privilege=mod, private=True, slow=True),
            CommandSpec("post regenerate", "Write the draft again.", self.regenerate,
                        args=(_ID,), privilege=mod, private=True, slow=True),
            CommandSpec("post edit", "Replace the draft's text with your own.", self.edit,
                        args=(_ID, Arg("text", ArgKind.TEXT, "the new text")),
                        privilege=mod, private=True),
            CommandSpec("post publish", "Post the draft now.", self.publish,
                        args=(_ID, _TARGETS), privilege=mod, private=True, slow=True),
            CommandSpec("post schedule", "Post the draft later (a one-time campaign).",
                        self.schedule, args=(_ID, Arg("when", ArgKind.STR, "ISO time or 'in 2h'"),
                                             _TARGETS,
                                             Arg("tz", ArgKind.STR, required=False)),
                        privilege=mod, private=True),
        ]

    async def draft(self, ctx: CommandContext) -> Outbound:
        await self.f.note_context(ctx)
        draft_id = uuid.uuid4().hex[:8]
        data = {"kind": ctx.args["kind"], "topic": (ctx.args.get("topic") or "").strip()[:200],
                "created_by": ctx.member_key, "created_at": str(time.time())}
        return await self._write(ctx, draft_id, data)

    async def regenerate(self, ctx: CommandContext) -> Outbound:
        draft_id = str(ctx.args["draft"])
        return await self._write(ctx, draft_id, await self.f.repo.draft(ctx.merchant, draft_id))

    async def _write(self, ctx: CommandContext, draft_id: str, data: dict[str, str]) -> Outbound:
        request = await post_request(self.f.core.store, self.f.repo, self.f.core.outbox,
                                     ctx.merchant, data["kind"], topic=data.get("topic", ""))
        try:
            written = await self.f.writer.write(request)
        except GenerationFailed as exc:
            raise UserInputError(f"I could not write an acceptable {data['kind']} post this "
                                 f"time ({exc}). Try /post draft again.") from None
        await self.f.repo.save_draft(ctx.merchant, draft_id, {**data, "text": written.text})
        return _show(draft_id, written.text)

    async def edit(self, ctx: CommandContext) -> Outbound:
        draft_id = str(ctx.args["draft"])
        data = await self.f.repo.draft(ctx.merchant, draft_id)
        text = str(ctx.args["text"]).strip()
        if len(text) < 5:
            raise UserInputError("The post text is too short.")
        await self.f.repo.save_draft(ctx.merchant, draft_id, {**data, "text": text[:4000]})
        return _show(draft_id, text[:4000])

    async def publish(self, ctx: CommandContext) -> str:
        draft_id = str(ctx.args["draft"])
        campaign, when = await self._campaign(ctx, draft_id, "in 0s", None)
        result = await self.f.runner.run(campaign.id, when.isoformat())
        return (f"Posted draft {draft_id}: {result.sent} sent, {result.failed} failed"
                f"{f', {result.skipped} skipped' if result.skipped else ''}. "
                f"/campaign history {campaign.name} shows where it went.")

    async def schedule(self, ctx: CommandContext) -> str:
        draft_id = str(ctx.args["draft"])
        campaign, when = await self._campaign(ctx, draft_id, ctx.args["when"],
                                              ctx.args.get("tz"))
        self.f.scheduler.schedule_run(campaign, when)
        await self.f.repo.update(campaign.merchant, campaign.name, next_run=when.isoformat())
        return (f"Draft {draft_id} will be posted once, as campaign {campaign.name}:\n"
                f"{describe_runs([when], campaign.schedule.timezone)}\n"
                f"/campaign pause {campaign.name} or /campaign delete {campaign.name} stops it.")

    async def _campaign(self, ctx: CommandContext, draft_id: str, when_text: str,
                        tz: str | None) -> tuple[Campaign, datetime]:
        data = await self.f.repo.draft(ctx.merchant, draft_id)
        targets = await self.f.campaign_commands.targets(ctx, ctx.args["targets"])
        timezone = (tz or self.f.core.settings.timezone).strip()
        now = datetime.now(UTC)
        if when_text == "in 0s":
            from bot.campaigns.models import ScheduleSpec

            spec = ScheduleSpec("once", now.replace(microsecond=0).isoformat(), timezone)
        else:
            spec = parse_schedule(when_text, timezone)
        when = datetime.fromisoformat(spec.expr)
        inbound = ctx.inbound
        campaign = Campaign(
            merchant=ctx.merchant, name=f"post-{draft_id}", brief=f"{data['kind']} post",
            schedule=spec, targets=targets, kind=data["kind"], draft_text=data["text"],
            approved_text=data["text"], approved_by=ctx.member_key, created_by=ctx.member_key,
            notify_platform=inbound.platform.value, notify_user=inbound.member.user_id,
            notify_channel=notify_channel_of(inbound), created_at=time.time(),
        )
        existing = await self.f.repo.get(ctx.merchant, campaign.name)
        if existing is not None:
            raise UserInputError(f"Draft {draft_id} was already published or scheduled as "
                                 f"campaign {campaign.name}; see /campaign history "
                                 f"{campaign.name}.")
        await self.f.repo.create(campaign)
        return campaign, when


def _show(draft_id: str, text: str) -> Outbound:
    return Outbound(
        text=f"Draft {draft_id} (only you see this):\n\n{text}", private=True,
        buttons=(Button("Regenerate", f"/post regenerate {draft_id}"),
                 Button("Publish here", f"/post publish {draft_id} here"),
                 Button("Schedule in 1h", f"/post schedule {draft_id} 'in 1h' here")),
    )
