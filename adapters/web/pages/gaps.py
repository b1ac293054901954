"""FAQ gaps: what members asked that the bot could not answer, grouped, with drafted answers
to approve into the FAQ (the same `FaqGaps` as /faq gaps and /faq approve)."""

from __future__ import annotations

from starlette.responses import Response

from adapters.web.context import Ctx, page
from bot.dashboard.jobs import Progress
from bot.growth import GrowthFeature


@page
async def gap_list(ctx: Ctx) -> Response:
    gaps = await ctx.web.app.feature(GrowthFeature).gaps.latest(ctx.merchant)
    return ctx.render("gaps.html", active_nav="gaps", gaps=gaps)


@page
async def search(ctx: Ctx) -> Response:
    """Cluster the unanswered questions and draft answers: model work, so a job."""
    growth = ctx.web.app.feature(GrowthFeature)
    merchant = ctx.merchant

    async def work(progress: Progress) -> str:
        progress.stage("Grouping unanswered questions and drafting answers", 1)
        found = await growth.gaps.find(merchant)
        progress.advance()
        if not found:
            return "No unanswered questions right now — nothing to add to the FAQ."
        return f"Found {len(found)} gap(s); the most asked has {found[0].asked} question(s)."

    job = await ctx.web.jobs.start(merchant, "gaps", "Finding FAQ gaps", 1, work)
    await ctx.record("gaps.search")
    return ctx.redirect(f"/jobs/{job}?back=/gaps")


@page
async def approve(ctx: Ctx) -> Response:
    gap_id = ctx.request.path_params["gap"]
    entry = await ctx.web.app.feature(GrowthFeature).gaps.approve(
        ctx.merchant, gap_id, ctx.field("answer") or None)
    await ctx.record("gaps.approve", f"gap {gap_id} → FAQ {entry.id}: {entry.question}")
    return ctx.redirect("/gaps", f"Added to the FAQ as {entry.id!r}: {entry.question}")
