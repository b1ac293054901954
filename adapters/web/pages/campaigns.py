"""Campaigns and posts: create, preview, edit, approve, schedule, pause, and where each run's
deliveries went — through `bot.campaigns.actions`, as the /campaign commands do."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.responses import Response

from adapters.web.context import Ctx, page
from bot.campaigns import CampaignFeature, actions
from bot.campaigns.models import Campaign
from bot.campaigns.schedule import next_runs
from bot.campaigns.writer import POST_KINDS
from bot.errors import UserInputError

FIELDS = {"text": "text", "brief": "brief", "schedule": "schedule", "targets": "targets",
          "segment": "segment", "products": "products", "timezone": "timezone"}


def _feature(ctx: Ctx) -> CampaignFeature:
    return ctx.web.app.feature(CampaignFeature)


def state_of(campaign: Campaign) -> str:
    return ("paused" if campaign.paused else "auto-approve" if campaign.auto_approve
            else "approved" if campaign.approved_text else "awaiting approval")


@page
async def campaign_list(ctx: Ctx) -> Response:
    f = _feature(ctx)
    if ctx.request.method == "POST":
        return await _create(ctx, f)
    campaigns = await f.repo.all(ctx.merchant)
    rows = [(c, state_of(c), f.scheduler.pending(c.id)) for c in campaigns]
    return ctx.render("campaigns.html", active_nav="campaigns", rows=rows,
                      channels=sorted(await f.repo.known_channels(ctx.merchant)),
                      kinds=POST_KINDS, timezone=f.core.settings.timezone, form={})


async def _create(ctx: Ctx, f: CampaignFeature) -> Response:
    platform, _, user = ctx.moderator.partition(":")
    chosen = [str(v) for v in ctx.form.getlist("targets")] if ctx.form is not None else []
    new = actions.NewCampaign(
        name=ctx.field("name"), schedule=ctx.field("schedule"), targets=",".join(chosen),
        brief=ctx.field("brief"), by=ctx.moderator, notify_platform=platform,
        notify_user=user, tz=ctx.field("tz"), segment=ctx.field("segment"),
        products=ctx.field("products"), auto_approve=bool(ctx.field("auto_approve")),
        kind=ctx.field("kind") or "promotion")
    try:
        campaign, _ = await actions.create_campaign(f, ctx.merchant, new)
    except UserInputError as exc:
        campaigns = await f.repo.all(ctx.merchant)
        rows = [(c, state_of(c), f.scheduler.pending(c.id)) for c in campaigns]
        return ctx.render("campaigns.html", 400, active_nav="campaigns", rows=rows,
                          channels=sorted(await f.repo.known_channels(ctx.merchant)),
                          kinds=POST_KINDS, timezone=f.core.settings.timezone,
                          form={**new.__dict__, "targets": chosen}, error=exc.message)
    await ctx.record("campaign.create", f"{campaign.name}: {campaign.schedule.describe()}, to "
                     f"{', '.join(t.key for t in campaign.targets)}")
    return ctx.redirect(f"/campaigns/{campaign.name}",
                        f"Campaign {campaign.name} created. Nothing posts until it is "
                        "approved: write a preview, then approve it.")


@page
async def campaign_page(ctx: Ctx) -> Response:
    f = _feature(ctx)
    name = ctx.request.path_params["name"]
    try:
        campaign, runs = await actions.run_history(f, ctx.merchant, name)
    except UserInputError as exc:
        return ctx.render("message.html", 404, title="No such campaign", message=exc.message)
    upcoming = next_runs(campaign.schedule, datetime.now(UTC)) if not campaign.paused else []
    return ctx.render("campaign.html", active_nav="campaigns", c=campaign,
                      state=state_of(campaign), pending=f.scheduler.pending(campaign.id),
                      upcoming=upcoming, runs=runs,
                      schedule_text=actions.schedule_text(campaign),
                      channels=sorted(await f.repo.known_channels(ctx.merchant)))


@page
async def campaign_action(ctx: Ctx) -> Response:
    f = _feature(ctx)
    name, action = ctx.request.path_params["name"], ctx.request.path_params["action"]
    where = f"/campaigns/{name}"
    if action == "preview":
        campaign, text = await actions.write_preview(f, ctx.merchant, name)
        await ctx.record("campaign.preview", f"{campaign.name}: {text[:200]}")
        return ctx.redirect(where, "A new draft was written. Read it, edit it if needed, "
                            "then approve it.")
    if action == "approve":
        message = await actions.approve_draft(f, ctx.merchant, name, ctx.moderator)
        campaign = await f.repo.require(ctx.merchant, name)
        await ctx.record("campaign.approve", f"{name}: {campaign.approved_text[:200]}")
        return ctx.redirect(where, message)
    if action in ("pause", "resume"):
        message = await actions.set_paused(f, ctx.merchant, name, action == "pause")
        await ctx.record(f"campaign.{action}", name)
        return ctx.redirect(where, message)
    if action == "delete":
        if ctx.field("confirm") != name:
            raise UserInputError(f"Type the campaign's name ({name}) to delete it.")
        message = await actions.delete_campaign(f, ctx.merchant, name)
        await ctx.record("campaign.delete", name)
        return ctx.redirect("/campaigns", message)
    if action in FIELDS:
        value = ctx.field("value")
        if action == "targets" and ctx.form is not None:
            value = ",".join(str(v) for v in ctx.form.getlist("targets"))
        message = await actions.edit_field(f, ctx.merchant, name, FIELDS[action], value)
        await ctx.record(f"campaign.edit.{action}", f"{name}: {value[:200]}")
        return ctx.redirect(where, message.splitlines()[0])
    return ctx.render("message.html", 404, title="Not found", message="No such action.")
