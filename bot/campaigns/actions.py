"""What moderators do to campaigns, as plain functions: the `/campaign` commands and the web
dashboard both call these, so a campaign behaves the same whichever way it is steered."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.campaigns.content import campaign_request
from bot.campaigns.models import Campaign, Delivery, Target, parse_targets, validate_name
from bot.campaigns.schedule import describe_runs, next_runs, parse_schedule, parse_timezone
from bot.campaigns.sources import check_products, check_segment, load_products, parse_product_list
from bot.campaigns.writer import POST_KINDS, GenerationFailed
from bot.errors import UserInputError

if TYPE_CHECKING:
    from bot.campaigns.feature import CampaignFeature

EDITABLE = ("brief", "schedule", "timezone", "targets", "segment", "products", "auto_approve",
            "text", "kind")


@dataclass(frozen=True)
class NewCampaign:
    """What a moderator fills in to create a campaign; `by` is their member key and
    `notify_platform`/`notify_user` (or `notify_channel`) where run reports reach them."""

    name: str
    schedule: str
    targets: str
    brief: str
    by: str
    notify_platform: str
    notify_user: str
    notify_channel: str = ""
    tz: str = ""
    segment: str = ""
    products: str = ""
    auto_approve: bool = False
    kind: str = "promotion"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    info: dict[str, str]
    deliveries: list[Delivery]


async def check_targets(f: CampaignFeature, merchant: str, text: str,
                        here: str | None = None) -> tuple[Target, ...]:
    """Parse targets; `here` (the channel a command was typed in) stands for the word
    'here'. Every channel must be one the bot has seen in a community the merchant
    approved.

    Raises:
        UserInputError: a malformed target, or a channel the bot never saw.
    """
    parts = []
    for part in text.split(","):
        if part.strip().lower() == "here":
            if here is None:
                raise UserInputError("'here' means the channel you type in; in a direct "
                                     "message name the channel, e.g. discord:1234.")
            parts.append(here)
        else:
            parts.append(part)
    targets = parse_targets(",".join(parts))
    known = await f.repo.known_channels(merchant)
    for target in targets:
        if target.is_dm or target.key in known:
            continue
        listing = ", ".join(sorted(known)) or "none yet"
        raise UserInputError(
            f"I don't know the channel {target.key}: I have never seen a message there in "
            f"the communities connected to the shop. Channels I know there: {listing}. Run "
            "the command in that channel with target 'here', or check the id.")
    return targets


async def create_campaign(f: CampaignFeature, merchant: str, new: NewCampaign,
                          here: str | None = None) -> tuple[Campaign, list[datetime]]:
    """Store and schedule a campaign (nothing posts before approval unless auto-approve).

    Returns:
        The campaign and its next run times.
    """
    name = validate_name(new.name)
    tz = (new.tz or f.core.settings.timezone).strip()
    schedule = parse_schedule(new.schedule, tz)
    targets = await check_targets(f, merchant, new.targets, here)
    brief = new.brief.strip()
    if len(brief) < 5:
        raise UserInputError("Give the campaign a brief of a few words: what to promote.")
    segment = check_segment(new.segment or "")
    products = parse_product_list(new.products or "")
    check_products(await load_products(f.core.store, merchant), products)
    if new.kind not in POST_KINDS:
        raise UserInputError(f"kind must be one of {', '.join(POST_KINDS)}.")
    campaign = Campaign(
        merchant=merchant, name=name, brief=brief[:1000], schedule=schedule, targets=targets,
        segment=segment, products=products, kind=new.kind, auto_approve=new.auto_approve,
        created_by=new.by, notify_platform=new.notify_platform, notify_user=new.notify_user,
        notify_channel=new.notify_channel, created_at=time.time(),
    )
    times = next_runs(schedule, datetime.now(UTC))
    if not times:
        raise UserInputError("That schedule has no run in the future.")
    await f.repo.create(campaign)
    await f.scheduler.schedule_next(campaign)
    return campaign, times


async def write_preview(f: CampaignFeature, merchant: str, name: str) -> tuple[Campaign, str]:
    """Have the model write the campaign's post now and keep it as the draft.

    Raises:
        UserInputError: no such campaign, or no acceptable post this time.
    """
    campaign = await f.repo.require(merchant, validate_name(name))
    request = await campaign_request(f.core.store, f.repo, f.core.outbox, campaign)
    try:
        written = await f.writer.write(request)
    except GenerationFailed as exc:
        raise UserInputError(f"I could not write an acceptable post for {campaign.name} "
                             f"this time ({exc}). Try again, or set the text yourself with "
                             f"/campaign edit {campaign.name} text ...") from None
    await f.repo.update(merchant, campaign.name, draft_text=written.text)
    return campaign, written.text


async def approve_draft(f: CampaignFeature, merchant: str, name: str, by: str) -> str:
    """Approve the draft as it stands; runs will post it. Returns what to tell the moderator."""
    campaign = await f.repo.require(merchant, validate_name(name))
    if not campaign.draft_text:
        raise UserInputError(f"Campaign {campaign.name} has no draft to approve yet: run "
                             f"/campaign preview {campaign.name} first.")
    await f.repo.update(merchant, campaign.name, approved_text=campaign.draft_text,
                        approved_by=by)
    pending = f.scheduler.pending(campaign.id)
    when = (f" Next run: {pending[0].isoformat(timespec='seconds')}." if pending
            else " It has no run left; set one with /campaign edit "
                 f"{campaign.name} schedule ...")
    paused = " It is paused; /campaign resume to let it run." if campaign.paused else ""
    return f"Approved. Campaign {campaign.name} will post the draft as it stands.{when}{paused}"


async def edit_field(f: CampaignFeature, merchant: str, name: str, field: str, value: str,
                     here: str | None = None) -> str:
    """Change one field; new content withdraws the approval. Returns what to tell."""
    campaign = await f.repo.require(merchant, validate_name(name))
    value = value.strip()
    if field not in EDITABLE:
        raise UserInputError(f"field must be one of {', '.join(EDITABLE)}.")
    changes: dict[str, object] = {}
    note = ""
    if field in ("schedule", "timezone"):
        expr = value if field == "schedule" else schedule_text(campaign)
        tz = value if field == "timezone" else campaign.schedule.timezone
        parse_timezone(tz)
        schedule = parse_schedule(expr, tz)
        campaign = replace(campaign, schedule=schedule)
        await f.repo.save(campaign)
        f.scheduler.unschedule(campaign.id)
        if not campaign.paused:
            await f.scheduler.schedule_next(campaign)
        times = next_runs(schedule, datetime.now(UTC))
        return (f"Campaign {campaign.name} now runs {schedule.describe()}. Next runs:\n"
                f"{describe_runs(times, schedule.timezone)}")
    if field == "targets":
        changes["targets"] = [t.key for t in await check_targets(f, merchant, value, here)]
    elif field == "segment":
        changes["segment"] = check_segment(value)
    elif field == "products":
        products = parse_product_list(value)
        check_products(await load_products(f.core.store, merchant), products)
        changes["products"] = products
    elif field == "auto_approve":
        changes["auto_approve"] = parse_yes_no(value)
    elif field == "kind":
        if value not in POST_KINDS:
            raise UserInputError(f"kind must be one of {', '.join(POST_KINDS)}.")
        changes["kind"] = value
    elif field == "brief":
        if len(value) < 5:
            raise UserInputError("Give the campaign a brief of a few words.")
        changes["brief"] = value[:1000]
    elif field == "text":
        if not value:
            raise UserInputError("The post text is empty.")
        changes["draft_text"] = value[:4000]
        note = f" It is a draft now: /campaign approve {campaign.name} to post it."
    if field in ("segment", "products", "brief", "kind", "text"):
        changes["approved_text"] = ""  # new content needs a fresh approval
        if field != "text":
            note = (f" The approved text was withdrawn: /campaign preview {campaign.name} "
                    "and approve again.")
    await f.repo.update(merchant, campaign.name, **{
        k: json.dumps(list(v)) if isinstance(v, list | tuple) else v
        for k, v in changes.items()})
    return f"Campaign {campaign.name}: {field} updated.{note}"


async def set_paused(f: CampaignFeature, merchant: str, name: str, paused: bool) -> str:
    campaign = await f.repo.require(merchant, validate_name(name))
    await f.repo.update(merchant, campaign.name, paused=paused)
    if paused:
        f.scheduler.unschedule(campaign.id)
        return f"Campaign {campaign.name} is paused; nothing will post until /campaign resume."
    when = await f.scheduler.schedule_next(replace(campaign, paused=False))
    if when is None:
        return (f"Campaign {campaign.name} is resumed, but its one-time run has passed; "
                f"set a new time with /campaign edit {campaign.name} schedule ...")
    return (f"Campaign {campaign.name} is resumed. "
            f"Next run: {when.isoformat(timespec='minutes')}.")


async def delete_campaign(f: CampaignFeature, merchant: str, name: str) -> str:
    campaign = await f.repo.require(merchant, validate_name(name))
    f.scheduler.unschedule(campaign.id)
    await f.repo.delete(merchant, campaign.name)
    return f"Campaign {campaign.name} and its history are deleted."


async def run_history(f: CampaignFeature, merchant: str, name: str,
                      runs: int = 10) -> tuple[Campaign, list[RunRecord]]:
    """The campaign's recent runs, newest first, each with its deliveries: those that need
    a look (uncertain, failed) first, then oldest first."""
    campaign = await f.repo.require(merchant, validate_name(name))
    records = []
    for run_id, info in await f.repo.recent_runs(merchant, campaign.name, runs):
        deliveries = await f.repo.deliveries(merchant, campaign.name, run_id)
        records.append(RunRecord(run_id, info, sorted(
            deliveries.values(), key=lambda d: (d.status not in ("uncertain", "failed"), d.at))))
    return campaign, records


def schedule_text(campaign: Campaign) -> str:
    """The schedule as a moderator would type it again."""
    spec = campaign.schedule
    if spec.kind == "cron":
        return f"cron {spec.expr}"
    if spec.kind == "interval":
        return f"every {spec.expr}s"
    return spec.expr


def parse_yes_no(value: str) -> bool:
    word = value.strip().lower()
    if word in ("yes", "on", "true", "1"):
        return True
    if word in ("no", "off", "false", "0"):
        return False
    raise UserInputError(f"auto_approve must be yes or no, not {value!r}.")
