"""The `shopkeep` command line: run the bot, ask it one thing, import data, serve the model."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bot.commerce import cli as commerce_cli
from bot.dashboard import cli as dashboard_cli
from bot.errors import ConfigError, ShopkeepError
from bot.events import Privilege
from bot.growth import cli as growth_cli
from bot.knowledge import cli as knowledge_cli
from bot.profiles import cli as profiles_cli
from bot.settings import Settings, load_settings
from bot.tenancy import cli as tenancy_cli

log = logging.getLogger("shopkeep")

DESCRIPTION = """\
Shopkeep answers your community's questions from your own FAQ and catalog, learns what each
member is interested in, and posts campaigns written for them — on Discord, Telegram and a
console, from one language-model brain.

Start here:
  shopkeep run                      chat with the bot in this terminal (demo shop, no tokens)
  shopkeep ask "do you ship to Canada?" --json
  shopkeep import faq my-faq.yaml   load your own FAQ (YAML, JSON or CSV)
  shopkeep sync                     read the catalog from your WooCommerce or Shopify store
  shopkeep communities code         a code that connects your group or server (/setup CODE)

Settings come from SHOPKEEP_* environment variables or shopkeep.toml; see the README.
"""


def _version() -> str:
    try:
        return version("shopkeep")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopkeep", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"shopkeep {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="start the bot on every platform whose token is set (console if none)",
        description="Start Shopkeep. Connects to Discord when DISCORD_TOKEN is set and to "
        "Telegram when TELEGRAM_TOKEN is set; with neither (or with --console) you chat with "
        "it in this terminal. Without SHOPKEEP_REDIS_URL an embedded Redis keeps its data in "
        "SHOPKEEP_DATA_DIR (./var), and the demo shop is loaded into an empty store.",
    )
    run.add_argument("--console", action="store_true", help="chat in this terminal as well")
    run.add_argument("--as", dest="role", default="member",
                     choices=[p.name.lower() for p in Privilege],
                     help="your role in the console (moderator to try moderator commands)")
    run.add_argument("--user", default="you", help="your member name in the console")
    run.add_argument("--merchant", help="merchant the console speaks for (default: default)")

    ask = sub.add_parser(
        "ask", help="send one message through the whole pipeline and print the answer",
        description="Send one message as a member and print the reply, exactly as a member "
        "would get it; text starting with / runs that command. What the message teaches "
        "(the member's interest profile) is stored before the command exits. With --batch, "
        "answer every question of FILE to evaluate the FAQ and catalog: one JSON object per "
        "question on stdout, in order, then a summary (answered, not answered, errors, "
        "sources cited): on stderr, or as a last line {\"summary\": ...} with --json. "
        "Batch questions are answered independently, as each member's first question, and "
        "leave nothing behind (no profile, memory, unanswered log or /stats). Neither form "
        "is subject to member rate limits or daily token budgets. Exit status: 0 when every "
        "message got the bot's reply (answered or not); 1 when any reply was an error (model "
        "unavailable, storage down, command refused) or the input was bad.",
    )
    ask.add_argument("text", nargs="?", help="the message, e.g. \"do you ship to Canada?\"")
    ask.add_argument("--merchant", help="merchant to ask (default: default)")
    ask.add_argument("--user", default="cli-user", help="member id to ask as")
    ask.add_argument("--role", default="member", choices=[p.name.lower() for p in Privilege])
    ask.add_argument("--json", action="store_true",
                     help='print {"reply", "citations", "answered", "latency_ms"} ("error" '
                     'when the reply was one, "files" where the files it sent were saved under '
                     "the data folder); with --batch, end with a JSON summary line")
    ask.add_argument("--batch", type=Path, metavar="FILE",
                     help="answer every line of FILE: a question as plain text, or "
                     '{"q": ..., "user": ...} JSON')
    ask.add_argument("--concurrency", type=int, default=8, metavar="N",
                     help="batch questions answered at once (default 8)")

    worker = sub.add_parser(
        "lm-worker", help="serve the language model to other Shopkeep processes via Redis",
        description="Consume generation and embedding requests from the Redis Streams group "
        "that bots with SHOPKEEP_LM_BACKEND=remote write to. Needs SHOPKEEP_REDIS_URL. With "
        "SHOPKEEP_METRICS_PORT set it serves /healthz, /readyz (ready once the models serve) "
        "and /metrics there.",
    )
    worker.add_argument("--redis-url", help="defaults to SHOPKEEP_REDIS_URL")
    knowledge_cli.add_parser(sub)  # shopkeep import faq|catalog FILE
    profiles_cli.add_parser(sub)  # shopkeep import history FILE (joins `import`)
    growth_cli.add_parser(sub)  # shopkeep stats
    commerce_cli.add_parser(sub)  # shopkeep sync
    tenancy_cli.add_parser(sub)  # shopkeep communities list|code|approve|revoke
    dashboard_cli.add_parser(sub)  # shopkeep dashboard link|serve

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"shopkeep: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings, quiet=args.command in ("ask", "import", "stats", "sync",
                                                            "communities")
                       or getattr(args, "action", None) == "link")
    handler = COMMANDS[args.command]
    try:
        return asyncio.run(handler(settings, args))
    except (ShopkeepError, ValueError) as exc:
        print(f"shopkeep: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _configure_logging(settings: Settings, quiet: bool) -> None:
    from bot.logs import configure

    configure(settings.log_level if not quiet else "WARNING", json_lines=settings.log_json)


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from adapters import build_adapters
    from adapters.console import ConsoleAdapter
    from bot.app import App

    adapters = build_adapters(settings)
    console = None
    if args.console or not adapters:
        console = ConsoleAdapter(user=args.user, role=Privilege.parse(args.role),
                                 merchant=args.merchant, files_dir=settings.data_dir / "files")
        adapters.append(console)
    front_ends = []
    if settings.dashboard_port is not None:  # the moderators' web dashboard, same process
        from adapters.web import WebDashboard

        front_ends.append(WebDashboard(settings.dashboard_host, settings.dashboard_port))
    app = App(settings, adapters=adapters, front_ends=front_ends)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    from bot.progress import status

    with status("Starting Shopkeep (loading the models takes a few seconds)..."):
        await app.start()
    try:
        waiters = [asyncio.create_task(stop.wait())]
        if console is not None:
            waiters.append(asyncio.create_task(console.closed.wait()))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
    finally:
        from bot.ops.shutdown import graceful_stop  # bounded by shutdown_timeout_s

        clean = await graceful_stop(app, settings.shutdown_timeout_s, hard_exit=True)
    return 0 if clean else 1


async def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ask import run_ask

    return await run_ask(settings, args)


async def cmd_lm_worker(settings: Settings, args: argparse.Namespace) -> int:
    from lm_service.worker import run_worker

    url = args.redis_url or settings.redis_url
    if not url:
        raise ConfigError("lm-worker needs SHOPKEEP_REDIS_URL (or --redis-url): the bot and "
                          "the workers must share one Redis server.")
    from bot.ops.server import worker_ops

    stop, serving = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with worker_ops(settings, url, serving, stop):
        await run_worker(settings, url, stop_event=stop, serving=serving)
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "run": cmd_run,
    "ask": cmd_ask,
    "lm-worker": cmd_lm_worker,
    "import": knowledge_cli.cmd_import,
    "stats": growth_cli.cmd_stats,
    "sync": commerce_cli.cmd_sync,
    "communities": tenancy_cli.cmd_communities,
    "dashboard": dashboard_cli.cmd_dashboard,
}
COMMANDS["import"] = profiles_cli.with_history(COMMANDS.get("import"))  # + import history


if __name__ == "__main__":
    raise SystemExit(main())
