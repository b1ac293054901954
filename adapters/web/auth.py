"""Sign-in by one-time link, and sign-out.

Opening a link shows a button rather than signing in at once: chat apps fetch links to
preview them, and a GET that used the link up would leave the moderator a dead link. The
button's POST carries a nonce also set as a cookie on that page (double submit), so another
site cannot sign a browser into someone else's session (login CSRF).
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters.web.context import SESSION_COOKIE, Ctx, Web, page
from bot.dashboard.access import LinkRefused
from bot.storage.keys import validate_merchant_id
from bot.storage.store import CONNECTION_ERRORS

SIGNIN_COOKIE = "shopkeep_signin"


async def signin_form(request: Request) -> Response:
    web: Web = request.app.state.web
    merchant = _merchant(request)
    if merchant is None:
        return web.render(request, "message.html", 404, title="Not found",
                          message="There is no such page.")
    nonce = secrets.token_urlsafe(24)
    response = web.render(request, "signin.html", merchant=merchant, nonce=nonce,
                          token=request.path_params["token"])
    response.set_cookie(SIGNIN_COOKIE, nonce, max_age=900, path=f"/m/{merchant}",
                        httponly=True, samesite="strict", secure=web.secure(request))
    return response


async def signin(request: Request) -> Response:
    web: Web = request.app.state.web
    merchant = _merchant(request)
    if merchant is None:
        return web.render(request, "message.html", 404, title="Not found",
                          message="There is no such page.")
    form = await request.form(max_files=0, max_fields=5)
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    sent = form.get("nonce")
    if not nonce or not isinstance(sent, str) or not secrets.compare_digest(nonce, sent):
        return web.render(request, "message.html", 403, title="Sign-in refused",
                          message="This sign-in did not come from the link's own page. Open "
                          "the link from /dashboard again and press Sign in.")
    try:
        grant = await web.access.redeem_link(merchant, request.path_params["token"])
        session = await web.access.open_session(grant)
        await web.audit.record(merchant, grant.member, grant.name, "signin",
                               f"signed in as {grant.role}")
    except LinkRefused as exc:
        return web.render(request, "message.html", 403, title="Link refused",
                          message=exc.message)
    except CONNECTION_ERRORS:
        return web.render(request, "message.html", 503, title="Storage unreachable",
                          message="The dashboard can't reach its storage right now. Try "
                          "again in a minute.")
    response = RedirectResponse(f"/m/{merchant}/", status_code=303)
    response.set_cookie(SESSION_COOKIE, session.id, max_age=web.app.settings
                        .dashboard_session_ttl_s, path=f"/m/{merchant}", httponly=True,
                        samesite="lax", secure=web.secure(request))
    response.delete_cookie(SIGNIN_COOKIE, path=f"/m/{merchant}")
    return response


@page
async def signout(ctx: Ctx) -> Response:
    await ctx.web.access.close_session(ctx.merchant, ctx.session.id)
    await ctx.record("signout")
    response = ctx.web.render(ctx.request, "message.html", title="Signed out",
                              message="You are signed out. Run /dashboard in your community "
                              "for a new link.")
    response.delete_cookie(SESSION_COOKIE, path=ctx.url(""))
    return response


def _merchant(request: Request) -> str | None:
    try:
        return validate_merchant_id(request.path_params.get("merchant", ""))
    except ValueError:
        return None
