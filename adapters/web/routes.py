"""The dashboard's URL map. Every page lives under /m/{merchant}/ and is scoped by it: the
session cookie is set for that path only, and a session is looked up under that merchant."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.web import auth
from adapters.web.context import HERE, Web
from adapters.web.pages import campaigns, gaps, jobs, knowledge, members, overview, settings

if TYPE_CHECKING:
    from bot.app import App

# No script or style from anywhere else, no framing, forms only to ourselves; the sign-in
# link's token never leaves in a Referer header.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
     b"style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
     b"base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        began = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                # The time the page took on the server (reads and rendering), for
                # bench/dashboard.py and the browser's developer tools.
                spent = (time.perf_counter() - began) * 1000
                headers.append((b"server-timing", f"app;dur={spent:.1f}".encode()))
                if not static:  # pages hold members' data: never kept in a cache
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def home(request: Request) -> Response:
    web: Web = request.app.state.web
    return web.render(request, "signin_needed.html", merchant=web.app.settings.merchant)


def build_asgi_app(app: App) -> ASGIApp:
    m = "/m/{merchant}"
    routes = [
        Route("/", home),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        Route(m + "/signin/{token}", auth.signin_form, methods=["GET"]),
        Route(m + "/signin/{token}", auth.signin, methods=["POST"]),
        Route(m + "/signout", auth.signout, methods=["POST"]),
        Route(m, overview.overview),
        Route(m + "/", overview.overview),
        Route(m + "/digest.png", overview.digest_chart),
        Route(m + "/faq", knowledge.faq_list, methods=["GET", "POST"]),
        Route(m + "/faq/{entry}", knowledge.faq_edit, methods=["GET", "POST"]),
        Route(m + "/faq/{entry}/remove", knowledge.faq_remove, methods=["POST"]),
        Route(m + "/catalog", knowledge.catalog_list, methods=["GET"]),
        Route(m + "/catalog/{sku}", knowledge.product_edit, methods=["GET", "POST"]),
        Route(m + "/import", knowledge.import_file, methods=["GET", "POST"]),
        Route(m + "/gaps", gaps.gap_list, methods=["GET"]),
        Route(m + "/gaps/search", gaps.search, methods=["POST"]),
        Route(m + "/gaps/{gap}/approve", gaps.approve, methods=["POST"]),
        Route(m + "/campaigns", campaigns.campaign_list, methods=["GET", "POST"]),
        Route(m + "/campaigns/{name}", campaigns.campaign_page, methods=["GET"]),
        Route(m + "/campaigns/{name}/{action}", campaigns.campaign_action, methods=["POST"]),
        Route(m + "/members", members.member_list, methods=["GET"]),
        Route(m + "/members/{member}", members.member_page, methods=["GET"]),
        Route(m + "/members/{member}/export", members.member_export, methods=["GET"]),
        Route(m + "/members/{member}/erase", members.member_erase, methods=["POST"]),
        Route(m + "/persona", settings.persona, methods=["GET", "POST"]),
        Route(m + "/tickets", settings.tickets, methods=["GET"]),
        Route(m + "/audit", settings.audit, methods=["GET"]),
        Route(m + "/jobs/{job}", jobs.job_page, methods=["GET"]),
        Route(m + "/jobs/{job}/state", jobs.job_state, methods=["GET"]),
    ]
    starlette = Starlette(routes=routes)
    starlette.state.web = Web(app)
    return SecurityHeaders(starlette)
