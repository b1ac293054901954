"""Live progress of long work: a page that updates itself, and the state it polls."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from adapters.web.context import Ctx, page


@page
async def job_page(ctx: Ctx) -> Response:
    state = await ctx.web.jobs.state(ctx.merchant, ctx.request.path_params["job"])
    if state is None:
        return ctx.render("message.html", 404, title="No such job",
                          message="That job is unknown or finished more than a day ago.")
    back = ctx.request.query_params.get("back", "/")
    return ctx.render("job.html", job=state, back=back if back.startswith("/") else "/")


@page
async def job_state(ctx: Ctx) -> Response:
    state = await ctx.web.jobs.state(ctx.merchant, ctx.request.path_params["job"])
    if state is None:
        return JSONResponse({"error": "unknown job"}, status_code=404)
    return JSONResponse(state.as_dict())
