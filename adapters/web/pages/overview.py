"""The overview: questions per day, answered rate, top topics, active members, referrals."""

from __future__ import annotations

import time

from starlette.responses import Response

from adapters.web.charts import stacked_bars
from adapters.web.context import Ctx, page
from bot.growth import GrowthFeature
from bot.growth.analytics import ACTIVE_WINDOWS, ALL
from bot.growth.digest import build_digest

PERIODS = (7, 14, 30)


@page
async def overview(ctx: Ctx) -> Response:
    growth = ctx.web.app.feature(GrowthFeature)
    days = _period(ctx.request.query_params.get("days"))
    now = time.time()
    # The figures /stats shows, active members counted combined only (what this page shows)
    report = await growth.stats(ctx.merchant, days, now, per_platform=False)
    leaders = await growth.referrals.leaderboard(ctx.merchant, now, "month", top=5)
    counts = report.counts[ALL]
    asked = counts["questions"]
    labels = [day[5:] for day, _ in report.daily_counts]
    questions_chart = stacked_bars(labels, [
        ("answered", [c["answered"] for _, c in report.daily_counts], "#15803d"),
        ("not answered", [c["unanswered"] for _, c in report.daily_counts], "#c2410c"),
    ], f"Questions to the bot per day, last {days} days")
    activity_chart = stacked_bars(labels, [
        ("active members", [active for _, active, _, _ in report.daily], "#1d4ed8"),
    ], f"Active members per day, last {days} days")
    referrals_chart = stacked_bars(labels, [
        ("referrals credited", [credited for *_, credited in report.daily], "#7e22ce"),
    ], f"Referrals credited per day, last {days} days")
    return ctx.render(
        "overview.html", active_nav="overview", report=report, days=days, periods=PERIODS,
        counts=counts, answered_rate=round(100 * counts["answered"] / asked) if asked else None,
        active={w: report.active[w][ALL] for w in ACTIVE_WINDOWS}, leaders=leaders,
        questions_chart=questions_chart, activity_chart=activity_chart,
        referrals_chart=referrals_chart, week=growth.calendar.week(now))


@page
async def digest_chart(ctx: Ctx) -> Response:
    """This week's digest chart (the weekly digest's own PNG code), as an image."""
    growth = ctx.web.app.feature(GrowthFeature)
    week = growth.calendar.week(time.time())
    _, png = await build_digest(growth, ctx.merchant, week)
    return Response(png, media_type="image/png",
                    headers={"Content-Disposition": f'inline; filename="digest-{week}.png"'})


def _period(raw: str | None) -> int:
    try:
        days = int(raw or 7)
    except ValueError:
        return 7
    return days if days in PERIODS else 7
