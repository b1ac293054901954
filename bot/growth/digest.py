"""The weekly digest: a written summary and a PNG chart, posted once per week to moderators."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, cast

from bot.core import Core
from bot.events import Destination, Outbound, OutboundFile, Platform
from bot.growth.analytics import ALL
from bot.growth.chart import render_digest_chart
from bot.growth.gaps import read_unanswered
from bot.growth.periods import DAY_S
from bot.growth.services import Growth
from bot.storage.keys import Keys

log = logging.getLogger(__name__)

LOCK_S = 600  # longest one digest may take to build and send before another may try
DONE_S = 60 * 86_400
JOB_PATH = "bot.growth.digest:run_weekly_digest"


class _JobContext:
    """The running app's `Core`, for jobs a persistent scheduler calls by name after a restart.

    Set once when the growth feature starts and cleared when it stops; handlers never touch it.
    """

    core: Core | None = None


def set_job_core(core: Core | None) -> None:
    _JobContext.core = core


async def build_digest(growth: Growth, merchant: str, week_id: str) -> tuple[str, bytes]:
    """The digest text and chart for an ISO week (`2026-W47`)."""
    calendar = growth.calendar
    days = calendar.week_days(week_id)
    end = calendar.end_of_week(week_id)
    await growth.referrals.settle(merchant, end)
    report = await growth.analytics.report(merchant, end, days=7)
    before = await growth.analytics.report(merchant, end - 7 * DAY_S, days=7)
    counts, prior = report.counts[ALL], before.counts[ALL]
    weekly_active = report.active[7][ALL]
    asked = counts["questions"]
    share = f" ({round(100 * counts['answered'] / asked)}% answered from your sources)" \
        if asked else ""
    unanswered = [u for u in await read_unanswered(growth.core.store.redis, Keys(merchant),
                                                   growth.settings.gap_max_questions)
                  if u.ts >= end - 7 * DAY_S]
    leaders = await growth.referrals.leaderboard(merchant, end, "month", top=3)
    lines = [
        f"Weekly digest, {days[0]} to {days[-1]}",
        f"• Active members: {weekly_active} (week before: {before.active[7][ALL]}); "
        f"messages: {counts['messages']} (week before: {prior['messages']}).",
        f"• Questions to the bot: {asked}{share}.",
    ]
    if report.sources:
        lines.append("• Sources used most: " + ", ".join(s for s, _ in report.sources[:3]) + ".")
    if report.interests:
        lines.append("• Top interests: " + ", ".join(
            f"{name} ({now}, week before {then})" for name, now, then in report.interests[:3])
            + ".")
    if counts["deliveries"]:
        lines.append(f"• Campaign messages delivered: {counts['deliveries']}.")
    lines.append(f"• Referrals credited: {counts['ref_credited']}, withdrawn: "
                 f"{counts['ref_withdrawn']}, new referred joins: {counts['ref_joined']}.")
    if leaders:
        lines.append("• Top referrers this month: " + ", ".join(
            f"{name} ({n})" for _, name, n in leaders) + ".")
    if unanswered:
        lines.append(f"• {len(unanswered)} question(s) went unanswered; /faq gaps groups them "
                     "and drafts FAQ answers to approve.")
    png = await asyncio.to_thread(render_digest_chart, f"Community week {week_id}",
                                  report.daily, report.interests)
    return "\n".join(lines), png


async def digest_destination(growth: Growth, merchant: str) -> Destination | None:
    """Where the digest goes: the channel set with `/digest channel`, else the setting."""
    stored = cast(dict[str, str],
                  await growth.core.store.redis.hgetall(Keys(merchant).digest_channel()))
    if stored:
        return Destination(Platform(stored["platform"]), channel_id=stored["channel_id"],
                           thread_id=stored.get("thread_id") or None)
    configured = growth.settings.digest_channel
    if configured:
        platform, _, channel = configured.partition(":")
        return Destination(Platform(platform), channel_id=channel)
    return None


async def run_weekly_digest(merchant: str, week_id: str | None = None, *,
                            core: Core | None = None) -> bool:
    """The scheduled job: post `week_id`'s digest (default: the last full week) once.

    A `SET NX` lock per merchant and week, then a done marker, make this safe to run from
    several processes at once: exactly one posts. If sending fails the lock is released so a
    retry (the next process, or the scheduler's next run) can post it.

    Returns:
        True when this call posted the digest.
    """
    core = core or _JobContext.core
    if core is None:
        raise RuntimeError("run_weekly_digest needs a started Shopkeep app")
    growth = Growth(core)
    if not growth.settings.digest_enabled:
        return False
    week = week_id or growth.calendar.previous_week(time.time())
    growth.calendar.week_days(week)  # a malformed id fails here, before any lock is taken
    destination = await digest_destination(growth, merchant)
    if destination is None:
        log.warning("no digest channel for merchant %s: run /digest channel in the "
                    "moderators' channel or set SHOPKEEP_DIGEST_CHANNEL", merchant)
        return False
    keys, redis = Keys(merchant), core.store.redis
    if await redis.exists(keys.digest_done(week)):
        return False
    token = secrets.token_hex(8)
    if not await redis.set(keys.digest_lock(week), token, nx=True, ex=LOCK_S):
        return False
    try:
        text, png = await build_digest(growth, merchant, week)
        await core.outbox.send(Outbound(
            text=text, files=(OutboundFile(f"digest-{week}.png", png, "image/png"),),
            destination=destination, idempotency_key=f"digest:{merchant}:{week}",
        ))
        await redis.set(keys.digest_done(week), str(time.time()), ex=DONE_S)
    except BaseException:
        if await redis.get(keys.digest_lock(week)) == token:
            await redis.delete(keys.digest_lock(week))
        raise
    log.info("posted the %s digest for merchant %s", week, merchant)
    return True


def schedule_digest(scheduler: Any, core: Core, merchant: str) -> str | None:
    """Add (or replace) the weekly digest job on an APScheduler scheduler — the campaigns
    scheduler, so it shares its Redis job store. Returns the job id, or None when disabled."""
    from apscheduler.triggers.cron import CronTrigger

    settings = core.settings
    job_id = f"digest:{merchant}"
    if not settings.digest_enabled:
        return None
    trigger = CronTrigger(day_of_week=settings.digest_weekday, hour=settings.digest_hour,
                          timezone=settings.timezone)
    scheduler.add_job(JOB_PATH, trigger, args=[merchant], id=job_id, replace_existing=True,
                      misfire_grace_time=6 * 3600, coalesce=True)
    return job_id
