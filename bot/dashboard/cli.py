"""`shopkeep dashboard link|serve`: a sign-in link from the shell, or the dashboard alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from bot.dashboard.access import Access, Grant
from bot.dashboard.feature import dashboard_base_url, signin_url
from bot.errors import ConfigError
from bot.events import Privilege
from bot.settings import Settings
from bot.storage.keys import validate_merchant_id
from bot.storage.store import Store


def add_parser(sub: Any) -> None:
    """Register `shopkeep dashboard ...` on the top-level sub-parsers."""
    parser = sub.add_parser(
        "dashboard", help="the moderators' web dashboard: a sign-in link, or serve it alone",
        description="The web dashboard is served by `shopkeep run` when "
        "SHOPKEEP_DASHBOARD_PORT is set; moderators get a one-time sign-in link with "
        "/dashboard in their community. `link` prints such a link from the shell (for the "
        "operator, or a first sign-in); `serve` runs the dashboard without the chat adapters, "
        "sharing the bot's Redis (deployments that put it on its own machine).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    link = actions.add_parser("link", help="print a one-time sign-in link",
                              description="Print a sign-in link that works once, for "
                              "SHOPKEEP_DASHBOARD_LINK_TTL_S seconds, as the given member. "
                              "No model is loaded.")
    link.add_argument("--member", required=True,
                      help="who signs in, as platform:user_id (e.g. telegram:12345); the "
                      "audit log names them")
    link.add_argument("--name", help="name shown in the dashboard (default: the member id)")
    link.add_argument("--merchant", help="merchant to sign in to (default: default)")
    link.add_argument("--role", default="admin", choices=("moderator", "admin", "owner"),
                      help="privilege the session carries (default: admin)")
    serve = actions.add_parser("serve", help="serve the dashboard alone",
                               description="Serve the dashboard on SHOPKEEP_DASHBOARD_HOST:"
                               "SHOPKEEP_DASHBOARD_PORT (or --port) with every feature but no "
                               "chat adapter; scheduled campaign runs and the digest are left "
                               "to the bot's processes. Point SHOPKEEP_REDIS_URL at the bot's "
                               "Redis.")
    serve.add_argument("--port", type=int, help="port (default: SHOPKEEP_DASHBOARD_PORT)")
    serve.add_argument("--host", help="address (default: SHOPKEEP_DASHBOARD_HOST)")


async def cmd_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "link":
        return await _link(settings, args)
    return await _serve(settings, args)


async def _link(settings: Settings, args: argparse.Namespace) -> int:
    merchant = validate_merchant_id(args.merchant or settings.merchant)
    member = str(args.member).strip()
    platform, sep, user = member.partition(":")
    if not sep or not platform or not user:
        raise ConfigError(f"--member {member!r} should look like platform:user_id, e.g. "
                          "telegram:12345.")
    base = dashboard_base_url(settings)
    if base is None:
        raise ConfigError("Set SHOPKEEP_DASHBOARD_PORT (or SHOPKEEP_DASHBOARD_URL) so that the "
                          "link has an address to point at.")
    store = Store(settings.redis_url, settings.data_dir)
    await store.start()
    try:
        access = Access(store.redis, settings.dashboard_link_ttl_s,
                        settings.dashboard_session_ttl_s)
        token = await access.issue_link(Grant(merchant, member, args.name or member,
                                              int(Privilege.parse(args.role))))
    finally:
        await store.stop()
    print(signin_url(base, merchant, token))
    return 0


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.web import WebDashboard
    from bot.app import App
    from bot.ops.shutdown import graceful_stop

    port = args.port if args.port is not None else settings.dashboard_port
    if port is None:
        raise ConfigError("Give --port or set SHOPKEEP_DASHBOARD_PORT.")
    host = args.host or settings.dashboard_host
    # No chat adapter here: the bot's processes fire the scheduled runs, not this one.
    settings = settings.model_copy(update={"dashboard_port": port, "dashboard_host": host,
                                           "scheduled_jobs": False})
    app = App(settings, front_ends=[WebDashboard(host, port)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        clean = await graceful_stop(app, settings.shutdown_timeout_s, hard_exit=True)
    return 0 if clean else 1
