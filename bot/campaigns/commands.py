"""The moderators' `/campaign ...` commands and the members' `/offers on|off`."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.campaigns.content import campaign_request
from bot.campaigns.models import (
    Campaign,
    Target,
    notify_channel_of,
    parse_targets,
    validate_name,
)
from bot.campaigns.schedule import describe_runs, next_runs, parse_schedule, parse_timezone
from bot.campaigns.sources import check_products, check_segment, load_products, parse_product_list
from bot.campaigns.writer import POST_KINDS, GenerationFailed
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.errors import UserInputError
from bot.events import Button, Outbound, Privilege

if TYPE_CHECKING:
    from bot.campaigns.feature import CampaignFeature

EDITABLE = ("brief", "schedule", "timezone", "targets", "segment", "products", "auto_approve",
            "text", "kind")
_NAME = Arg("name", ArgKind.STR, "the campaign's name, e.g. spring-sale")


class CampaignCommands:
    def __init__(self, feature: CampaignFeature) -> None:
        self.f = feature

    def specs(self) -> list[CommandSpec]:
        mod = Privilege.MODERATOR
        return [
            CommandSpec(
                "campaign create", "Create a campaign; it posts only after a moderator approves.",
                self.create, privilege=mod, private=True,
                args=(_NAME,
                      Arg("schedule", ArgKind.STR, "ISO time, 'in 2h', 'every 1d' or "
                          "'cron 0 9 * * mon' (quote it)"),
                      Arg("targets", ArgKind.STR, "comma-separated: here, discord:<channel>, "
                          "telegram:<chat>, dm (opted-in members of the segment)"),
                      Arg("brief", ArgKind.STR, "what the post should say (quote it)"),
                      Arg("tz", ArgKind.STR, "IANA time zone (default: the shop's)",
                          required=False),
                      Arg("segment", ArgKind.STR, "audience, e.g. interest:tents>0.3,active:30d",
                          required=False),
                      Arg("products", ArgKind.STR, "SKUs or category:<name>, comma-separated",
                          required=False),
                      Arg("auto_approve", ArgKind.BOOL, "post each run without approval",
                          required=False, default=False),
                      Arg("kind", ArgKind.CHOICE, "post template", required=False,
                          choices=POST_KINDS, default="promotion")),
                examples=('/campaign create spring "every 1d" here "Spring tents are in" '
                          "segment=interest:tents",)),
            CommandSpec("campaign preview", "Write the campaign's post now; only you see it.",
                        self.preview, args=(_NAME,), privilege=mod, private=True, slow=True),
            CommandSpec("campaign approve", "Approve the last preview; runs will post it.",
                        self.approve, args=(_NAME,), privilege=mod, private=True),
            CommandSpec("campaign list", "List the campaigns and their next runs.", self.list,
                        privilege=mod, private=True),
            CommandSpec("campaign pause", "Stop a campaign's runs until resumed.", self.pause,
                        args=(_NAME,), privilege=mod, private=True),
            CommandSpec("campaign resume", "Resume a paused campaign.", self.resume,
                        args=(_NAME,), privilege=mod, private=True),
            CommandSpec("campaign edit", "Change one field of a campaign.", self.edit,
                        args=(_NAME, Arg("field", ArgKind.CHOICE, choices=EDITABLE),
                              Arg("value", ArgKind.TEXT, "the new value")),
                        privilege=mod, private=True),
            CommandSpec("campaign delete", "Delete a campaign, its runs and its history.",
                        self.delete, args=(_NAME,), privilege=mod, private=True),
            CommandSpec("campaign history", "Recent runs and where each delivery went.",
                        self.history, args=(_NAME,), privilege=mod, private=True),
            CommandSpec("campaign resend", "Post an uncertain delivery again once you have "
                        "checked it is missing.", self.resend,
                        args=(_NAME, Arg("target", ArgKind.STR, "a target /campaign history "
                                         "shows as uncertain, e.g. telegram:-100123"),
                              Arg("run", ArgKind.STR, "the run (default: the latest one "
                                  "where it is uncertain)", required=False)),
                        privilege=mod, private=True),
            CommandSpec("offers", "Get (or stop getting) offers from the shop by direct message.",
                        self.offers, args=(Arg("choice", ArgKind.CHOICE, choices=("on", "off")),),
                        private=True),
        ]

    # create / edit -----------------------------------------------------------------------
    async def create(self, ctx: CommandContext) -> Outbound:
        await self.f.note_context(ctx)
        name = validate_name(ctx.args["name"])
        tz = (ctx.args.get("tz") or self.f.core.settings.timezone).strip()
        schedule = parse_schedule(ctx.args["schedule"], tz)
        targets = await self.targets(ctx, ctx.args["targets"])
        brief = str(ctx.args["brief"]).strip()
        if len(brief) < 5:
            raise UserInputError("Give the campaign a brief of a few words: what to promote.")
        segment = check_segment(ctx.args.get("segment") or "")
        products = parse_product_list(ctx.args.get("products") or "")
        check_products(await load_products(self.f.core.store, ctx.merchant), products)
        inbound = ctx.inbound
        campaign = Campaign(
            merchant=ctx.merchant, name=name, brief=brief[:1000], schedule=schedule,
            targets=targets, segment=segment, products=products,
            kind=ctx.args.get("kind") or "promotion",
            auto_approve=bool(ctx.args.get("auto_approve")), created_by=ctx.member_key,
            notify_platform=inbound.platform.value, notify_user=inbound.member.user_id,
            notify_channel=notify_channel_of(inbound), created_at=time.time(),
        )
        times = next_runs(schedule, datetime.now(UTC))
        if not times:
            raise UserInputError("That schedule has no run in the future.")
        await self.f.repo.create(campaign)
        await self.f.scheduler.schedule_next(campaign)
        approval = ("It posts freshly written text each run (auto-approve)." if
                    campaign.auto_approve else "Nothing posts until a moderator approves: "
                    f"/campaign preview {name}, then /campaign approve {name}.")
        text = (f"Campaign {name} created: {schedule.describe()}, to "
                f"{', '.join(t.key for t in targets)}"
                f"{f', audience {segment}' if segment else ''}.\nNext runs:\n"
                f"{describe_runs(times, schedule.timezone)}\n{approval}")
        return Outbound(text=text, private=True, buttons=(
            Button("Preview", f"/campaign preview {name}"),))

    async def edit(self, ctx: CommandContext) -> str:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        field, value = ctx.args["field"], str(ctx.args["value"]).strip()
        changes: dict[str, object] = {}
        note = ""
        if field in ("schedule", "timezone"):
            expr = value if field == "schedule" else _schedule_text(campaign)
            tz = value if field == "timezone" else campaign.schedule.timezone
            parse_timezone(tz)
            schedule = parse_schedule(expr, tz)
            campaign = replace(campaign, schedule=schedule)
            await self.f.repo.save(campaign)
            self.f.scheduler.unschedule(campaign.id)
            if not campaign.paused:
                await self.f.scheduler.schedule_next(campaign)
            times = next_runs(schedule, datetime.now(UTC))
            return (f"Campaign {campaign.name} now runs {schedule.describe()}. Next runs:\n"
                    f"{describe_runs(times, schedule.timezone)}")
        if field == "targets":
            changes["targets"] = [t.key for t in await self.targets(ctx, value)]
        elif field == "segment":
            changes["segment"] = check_segment(value)
        elif field == "products":
            products = parse_product_list(value)
            check_products(await load_products(self.f.core.store, ctx.merchant), products)
            changes["products"] = products
        elif field == "auto_approve":
            changes["auto_approve"] = _bool(value)
        elif field == "kind":
            if value not in POST_KINDS:
                raise UserInputError(f"kind must be one of {', '.join(POST_KINDS)}.")
            changes["kind"] = value
        elif field == "brief":
            if len(value) < 5:
                raise UserInputError("Give the campaign a brief of a few words.")
            changes["brief"] = value[:1000]
        elif field == "text":
            changes["draft_text"] = value[:4000]
            note = f" It is a draft now: /campaign approve {campaign.name} to post it."
        if field in ("segment", "products", "brief", "kind", "text"):
            changes["approved_text"] = ""  # new content needs a fresh approval
            if field != "text":
                note = (f" The approved text was withdrawn: /campaign preview {campaign.name} "
                        "and approve again.")
        await self.f.repo.update(ctx.merchant, campaign.name, **{
            k: json.dumps(list(v)) if isinstance(v, list | tuple) else v
            for k, v in changes.items()})
        return f"Campaign {campaign.name}: {field} updated.{note}"

    async def targets(self, ctx: CommandContext, text: str) -> tuple[Target, ...]:
        """Parse targets typed by a moderator; every channel must be one the bot has seen in
        a community the merchant approved."""
        await self.f.note_context(ctx)  # the channel typed in is one the bot has seen
        here = ctx.inbound.community
        parts = []
        for part in text.split(","):
            if part.strip().lower() == "here":
                if here is None:
                    raise UserInputError("'here' means the channel you type in; in a direct "
                                         "message name the channel, e.g. discord:1234.")
                parts.append(here.channel_key)
            else:
                parts.append(part)
        targets = parse_targets(",".join(parts))
        known = await self.f.repo.known_channels(ctx.merchant)
        for target in targets:
            if target.is_dm or target.key in known:
                continue
            listing = ", ".join(sorted(known)) or "none yet"
            raise UserInputError(
                f"I don't know the channel {target.key}: I have never seen a message there in "
                f"the communities connected to the shop. Channels I know there: {listing}. Run "
                "the command in that channel with target 'here', or check the id.")
        return targets

    # preview / approve -------------------------------------------------------------------
    async def preview(self, ctx: CommandContext) -> Outbound:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        request = await campaign_request(self.f.core.store, self.f.repo, self.f.core.outbox,
                                         campaign)
        try:
            written = await self.f.writer.write(request)
        except GenerationFailed as exc:
            raise UserInputError(f"I could not write an acceptable post for {campaign.name} "
                                 f"this time ({exc}). Try again, or set the text yourself with "
                                 f"/campaign edit {campaign.name} text ...") from None
        await self.f.repo.update(ctx.merchant, campaign.name, draft_text=written.text)
        name = campaign.name
        return Outbound(
            text=f"Preview of {name} (only you see this):\n\n{written.text}", private=True,
            buttons=(Button("Approve", f"/campaign approve {name}"),
                     Button("Regenerate", f"/campaign preview {name}")))

    async def approve(self, ctx: CommandContext) -> str:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        if not campaign.draft_text:
            raise UserInputError(f"Campaign {campaign.name} has no draft to approve yet: run "
                                 f"/campaign preview {campaign.name} first.")
        await self.f.repo.update(ctx.merchant, campaign.name, approved_text=campaign.draft_text,
                                 approved_by=ctx.member_key)
        pending = self.f.scheduler.pending(campaign.id)
        when = (f" Next run: {pending[0].isoformat(timespec='seconds')}." if pending
                else " It has no run left; set one with /campaign edit "
                     f"{campaign.name} schedule ...")
        paused = " It is paused; /campaign resume to let it run." if campaign.paused else ""
        return f"Approved. Campaign {campaign.name} will post the draft as it stands.{when}{paused}"

    # list / pause / resume / delete / history --------------------------------------------
    async def list(self, ctx: CommandContext) -> str:
        campaigns = await self.f.repo.all(ctx.merchant)
        if not campaigns:
            return "No campaigns yet. Create one with /campaign create."
        lines = []
        for c in campaigns:
            state = ("paused" if c.paused else "auto-approve" if c.auto_approve
                     else "approved" if c.approved_text else "awaiting approval")
            pending = self.f.scheduler.pending(c.id)
            nxt = pending[0].isoformat(timespec="minutes") if pending else "none"
            lines.append(f"• {c.name} — {state}; {c.schedule.describe()}; next {nxt}; "
                         f"to {', '.join(t.key for t in c.targets)}")
        return "Campaigns:\n" + "\n".join(lines)

    async def pause(self, ctx: CommandContext) -> str:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        await self.f.repo.update(ctx.merchant, campaign.name, paused=True)
        self.f.scheduler.unschedule(campaign.id)
        return f"Campaign {campaign.name} is paused; nothing will post until /campaign resume."

    async def resume(self, ctx: CommandContext) -> str:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        await self.f.repo.update(ctx.merchant, campaign.name, paused=False)
        when = await self.f.scheduler.schedule_next(replace(campaign, paused=False))
        if when is None:
            return (f"Campaign {campaign.name} is resumed, but its one-time run has passed; "
                    f"set a new time with /campaign edit {campaign.name} schedule ...")
        return (f"Campaign {campaign.name} is resumed. "
                f"Next run: {when.isoformat(timespec='minutes')}.")

    async def delete(self, ctx: CommandContext) -> str:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        self.f.scheduler.unschedule(campaign.id)
        await self.f.repo.delete(ctx.merchant, campaign.name)
        return f"Campaign {campaign.name} and its history are deleted."

    async def history(self, ctx: CommandContext) -> str:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        runs = await self.f.repo.recent_runs(ctx.merchant, campaign.name)
        if not runs:
            return f"Campaign {campaign.name} has not run yet."
        lines = [f"Recent runs of {campaign.name}:"]
        for run_id, info in runs:
            uncertain = int(info.get("uncertain") or 0)
            counts = (f" — {info.get('sent', 0)} sent, {info.get('failed', 0)} failed, "
                      f"{info.get('skipped', 0)} skipped"
                      f"{f', {uncertain} uncertain' if uncertain else ''}"
                      if "sent" in info else "")
            note = f" ({info['note']})" if info.get("note") else ""
            lines.append(f"• {run_id}: {info.get('status', '?')}{counts}{note}")
            deliveries = await self.f.repo.deliveries(ctx.merchant, campaign.name, run_id)
            # Those that need a look first: uncertain and failed ones are never cut off.
            for d in sorted(deliveries.values(),
                            key=lambda d: (d.status not in ("uncertain", "failed"), d.at))[:10]:
                ids = f" message {','.join(d.message_ids)}" if d.message_ids else ""
                at = datetime.fromtimestamp(d.at, UTC).strftime("%H:%M:%S")
                detail = f" ({d.detail})" if d.detail else ""
                lines.append(f"    {d.target}: {d.status}{ids} at {at}{detail}")
        return "\n".join(lines)

    async def resend(self, ctx: CommandContext) -> str:
        campaign = await self.f.repo.require(ctx.merchant, validate_name(ctx.args["name"]))
        target = str(ctx.args["target"]).strip()
        run_id = ctx.args.get("run")
        if not run_id:
            for candidate, _info in await self.f.repo.recent_runs(ctx.merchant, campaign.name):
                log = await self.f.repo.deliveries(ctx.merchant, campaign.name, candidate)
                if target in log and log[target].status == "uncertain":
                    run_id = candidate
                    break
            else:
                raise UserInputError(f"No recent run of {campaign.name} is uncertain about "
                                     f"{target}; /campaign history {campaign.name} shows where "
                                     "each post went.")
        delivery = await self.f.runner.resend(campaign, str(run_id), target, ctx.member_key)
        return (f"Posted run {run_id} of {campaign.name} to {target} again "
                f"(message {', '.join(delivery.message_ids)}).")

    async def offers(self, ctx: CommandContext) -> str:
        opted_in = ctx.args["choice"] == "on"
        await self.f.repo.set_offers(ctx.merchant, ctx.member_key, opted_in)
        if opted_in:
            return "You'll get the occasional offer by direct message. /offers off stops them."
        return "Done — no more offers by direct message."


def _schedule_text(campaign: Campaign) -> str:
    spec = campaign.schedule
    if spec.kind == "cron":
        return f"cron {spec.expr}"
    if spec.kind == "interval":
        return f"every {spec.expr}s"
    return spec.expr


def _bool(value: str) -> bool:
    word = value.strip().lower()
    if word in ("yes", "on", "true", "1"):
        return True
    if word in ("no", "off", "false", "0"):
        return False
    raise UserInputError(f"auto_approve must be yes or no, not {value!r}.")
