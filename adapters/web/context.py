"""What every dashboard page shares: the signed-in session, CSRF on every form, the audit
record of each change, flash messages, rendering, and the one error funnel."""

from __future__ import annotations

import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from bot.dashboard import DashboardFeature
from bot.dashboard.access import Access, Session, csrf_matches
from bot.dashboard.audit import AuditLog
from bot.dashboard.jobs import Jobs
from bot.errors import UserFacingError
from bot.storage.keys import validate_merchant_id
from bot.storage.store import CONNECTION_ERRORS

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "shopkeep_session"
FLASH_COOKIE = "shopkeep_flash"
MAX_BODY = 6 * 1024 * 1024  # an import file (5 MB at most) and the form around it
NAV = (("overview", "Overview", "/"), ("faq", "FAQ", "/faq"), ("catalog", "Catalog", "/catalog"),
       ("gaps", "FAQ gaps", "/gaps"), ("campaigns", "Campaigns", "/campaigns"),
       ("members", "Members", "/members"), ("tickets", "Tickets", "/tickets"),
       ("persona", "Persona & settings", "/persona"), ("audit", "Audit log", "/audit"))


class Web:
    """The running app as the pages see it: its features, and the dashboard's parts."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["nav"] = NAV
        self.templates.env.filters["utc"] = _utc
        self.templates.env.filters["iso"] = _iso

    @property
    def dashboard(self) -> DashboardFeature:
        return self.app.feature(DashboardFeature)

    @property
    def access(self) -> Access:
        return self.dashboard.access

    @property
    def audit(self) -> AuditLog:
        return self.dashboard.audit

    @property
    def jobs(self) -> Jobs:
        jobs = self.dashboard.jobs
        if jobs is None:
            raise RuntimeError("the dashboard feature has not been started")
        return jobs

    def secure(self, request: Request) -> bool:
        """Cookies are marked Secure when the browser reached us over https (directly or
        through a proxy that says so), or when the public address is https."""
        configured = self.app.settings.dashboard_url or ""
        return request.url.scheme == "https" or configured.startswith("https://")

    def render(self, request: Request, name: str, status: int = 200,
               **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status)


@dataclass
class Ctx:
    """One signed-in request."""

    web: Web
    request: Request
    session: Session
    form: FormData | None

    @property
    def merchant(self) -> str:
        return self.session.grant.merchant

    @property
    def moderator(self) -> str:
        return self.session.grant.member

    def url(self, path: str = "/") -> str:
        return f"/m/{self.merchant}{path}"

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def upload(self, name: str) -> UploadFile | None:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, UploadFile) and value.filename else None

    async def record(self, action: str, detail: str = "") -> None:
        """Write the change to the audit log: who, what, when."""
        grant = self.session.grant
        await self.web.audit.record(self.merchant, grant.member, grant.name, action, detail)

    def render(self, name: str, status: int = 200, **context: Any) -> Response:
        flash = self.request.cookies.get(FLASH_COOKIE)
        response = self.web.render(
            self.request, name, status, session=self.session, merchant=self.merchant,
            base=self.url(""), csrf=self.session.csrf, flash=_read_flash(flash), **context)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path=self.url(""))
        return response

    def redirect(self, path: str, message: str = "", error: bool = False) -> Response:
        """Post/redirect/get, carrying one line to show on the next page."""
        response = RedirectResponse(self.url(path), status_code=303)
        if message:
            response.set_cookie(FLASH_COOKIE, _write_flash(message, error), max_age=60,
                                path=self.url(""), httponly=True, samesite="lax",
                                secure=self.web.secure(self.request))
        return response


Handler = Callable[[Ctx], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(handler: Handler) -> Endpoint:
    """A signed-in page of the merchant in the path. No session for that merchant: the
    sign-in hint (401). A form without this session's CSRF token: refused (403), nothing
    changed. A `UserFacingError` comes back as a message on the page it was posted from."""

    async def endpoint(request: Request) -> Response:
        web: Web = request.app.state.web
        merchant = request.path_params.get("merchant", "")
        try:
            validate_merchant_id(merchant)
        except ValueError:
            return web.render(request, "message.html", 404, title="Not found",
                              message="There is no such page.")
        try:
            session = await web.access.session(merchant,
                                               request.cookies.get(SESSION_COOKIE, ""))
            if session is None:
                return web.render(request, "signin_needed.html", 401, merchant=merchant)
            form = None
            if request.method == "POST":
                if int(request.headers.get("content-length") or 0) > MAX_BODY:
                    return web.render(request, "message.html", 413, title="Too large",
                                      message="That upload is larger than 5 MB.")
                form = await request.form(max_files=2, max_fields=200)
                if not csrf_matches(session, _text(form.get("csrf"))):
                    return web.render(request, "message.html", 403, title="Form refused",
                                      message="This form was not sent from your dashboard "
                                      "session (or the session changed). Nothing was changed. "
                                      "Reload the page and try again.")
            ctx = Ctx(web, request, session, form)
        except CONNECTION_ERRORS:
            return _storage_down(web, request)
        try:
            return await handler(ctx)
        except UserFacingError as exc:
            if request.method == "POST":
                return ctx.redirect(_back_path(request, ctx), exc.message, error=True)
            return ctx.render("message.html", 400, title="Not possible", message=exc.message)
        except CONNECTION_ERRORS:
            return _storage_down(web, request)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("dashboard error %s on %s %s", error_id, request.method,
                          request.url.path)
            return ctx.render("message.html", 500, title="Something went wrong",
                              message=f"Something went wrong on our side (error {error_id}). "
                              "Nothing you did caused it; the team can look it up.")

    return endpoint


def _storage_down(web: Web, request: Request) -> Response:
    return web.render(request, "message.html", 503, title="Storage unreachable",
                      message="The dashboard can't reach its storage right now. Try again in "
                      "a minute.")


def _back_path(request: Request, ctx: Ctx) -> str:
    """Where a refused form returns to: the page it was posted from, if it is one of ours."""
    referer = urllib.parse.urlsplit(request.headers.get("referer", ""))
    prefix = ctx.url("")
    if referer.path.startswith(prefix + "/") or referer.path == prefix:
        query = f"?{referer.query}" if referer.query else ""
        return referer.path.removeprefix(prefix) + query or "/"
    return request.url.path.removeprefix(prefix) or "/"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _write_flash(message: str, error: bool) -> str:
    return ("e" if error else "i") + urllib.parse.quote(message[:600])


def _read_flash(raw: str | None) -> dict[str, Any] | None:
    if not raw or raw[0] not in "ei":
        return None
    return {"error": raw[0] == "e", "text": Markup.escape(urllib.parse.unquote(raw[1:]))}
