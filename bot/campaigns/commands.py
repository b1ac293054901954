"""The moderators' `/campaign ...` commands and the members' `/offers on|off`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.campaigns import actions
from bot.campaigns.actions import EDITABLE
from bot.campaigns.models import Target, notify_channel_of, validate_name
from bot.campaigns.schedule import describe_runs
from bot.campaigns.writer import POST_KINDS
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.errors import UserInputError
from bot.events import Button, Outbound, Privilege

if TYPE_CHECKING:
    from bot.campaigns.feature import CampaignFeature

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
        inbound = ctx.inbound
        campaign, times = await actions.create_campaign(self.f, ctx.merchant, actions.NewCampaign(
            name=ctx.args["name"], schedule=ctx.args["schedule"], targets=ctx.args["targets"],
            brief=str(ctx.args["brief"]), by=ctx.member_key,
            notify_platform=inbound.platform.value, notify_user=inbound.member.user_id,
            notify_channel=notify_channel_of(inbound),
            tz=ctx.args.get("tz") or "", segment=ctx.args.get("segment") or "",
            products=ctx.args.get("products") or "",
            auto_approve=bool(ctx.args.get("auto_approve")),
            kind=ctx.args.get("kind") or "promotion"), here=_here(ctx))
        name, schedule = campaign.name, campaign.schedule
        approval = ("It posts freshly written text each run (auto-approve)." if
                    campaign.auto_approve else "Nothing posts until a moderator approves: "
                    f"/campaign preview {name}, then /campaign approve {name}.")
        text = (f"Campaign {name} created: {schedule.describe()}, to "
                f"{', '.join(t.key for t in campaign.targets)}"
                f"{f', audience {campaign.segment}' if campaign.segment else ''}.\nNext runs:\n"
                f"{describe_runs(times, schedule.timezone)}\n{approval}")
        return Outbound(text=text, private=True, buttons=(
            Button("Preview", f"/campaign preview {name}"),))

    async def edit(self, ctx: CommandContext) -> str:
        if ctx.args["field"] == "targets":
            await self.f.note_context(ctx)  # the channel typed in is one the bot has seen
        return await actions.edit_field(self.f, ctx.merchant, ctx.args["name"],
                                        ctx.args["field"], str(ctx.args["value"]), _here(ctx))

    async def targets(self, ctx: CommandContext, text: str) -> tuple[Target, ...]:
        """Parse targets typed by a moderator; every channel must be one the bot has seen in
        a community the merchant approved."""
        await self.f.note_context(ctx)  # the channel typed in is one the bot has seen
        return await actions.check_targets(self.f, ctx.merchant, text, _here(ctx))

    # preview / approve -------------------------------------------------------------------
    async def preview(self, ctx: CommandContext) -> Outbound:
        campaign, text = await actions.write_preview(self.f, ctx.merchant, ctx.args["name"])
        name = campaign.name
        return Outbound(
            text=f"Preview of {name} (only you see this):\n\n{text}", private=True,
            buttons=(Button("Approve", f"/campaign approve {name}"),
                     Button("Regenerate", f"/campaign preview {name}")))

    async def approve(self, ctx: CommandContext) -> str:
        return await actions.approve_draft(self.f, ctx.merchant, ctx.args["name"],
                                           ctx.member_key)

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
        return await actions.set_paused(self.f, ctx.merchant, ctx.args["name"], True)

    async def resume(self, ctx: CommandContext) -> str:
        return await actions.set_paused(self.f, ctx.merchant, ctx.args["name"], False)

    async def delete(self, ctx: CommandContext) -> str:
        return await actions.delete_campaign(self.f, ctx.merchant, ctx.args["name"])

    async def history(self, ctx: CommandContext) -> str:
        campaign, runs = await actions.run_history(self.f, ctx.merchant, ctx.args["name"])
        if not runs:
            return f"Campaign {campaign.name} has not run yet."
        lines = [f"Recent runs of {campaign.name}:"]
        for run in runs:
            info = run.info
            uncertain = int(info.get("uncertain") or 0)
            counts = (f" — {info.get('sent', 0)} sent, {info.get('failed', 0)} failed, "
                      f"{info.get('skipped', 0)} skipped"
                      f"{f', {uncertain} uncertain' if uncertain else ''}"
                      if "sent" in info else "")
            note = f" ({info['note']})" if info.get("note") else ""
            lines.append(f"• {run.run_id}: {info.get('status', '?')}{counts}{note}")
            for d in run.deliveries[:10]:
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


def _here(ctx: CommandContext) -> str | None:
    """The channel the command was typed in: what the target 'here' means."""
    return ctx.inbound.community.channel_key if ctx.inbound.community is not None else None
