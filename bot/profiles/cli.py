"""`shopkeep import history FILE [--merchant M]`: back-fill profiles from a chat export."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bot.settings import Settings

ImportHandler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
HELP = ("history: a chat export, JSON lines of {platform, community, user, text, ts}, "
        "folded into members' interest profiles")


def add_parser(sub: Any) -> None:
    """Adds `history` to `shopkeep import` (the knowledge import owns the sub-command; when it
    is absent, `import history` is created here)."""
    parser = sub.choices.get("import")
    if parser is None:
        parser = sub.add_parser("import", help="import a chat history into profiles")
        parser.add_argument("kind", choices=["history"], help="what the file holds")
        parser.add_argument("file", type=Path, help="the file to import")
        parser.add_argument("--merchant", help="merchant to import for (default: default)")
    else:
        # argparse has no public way to widen an existing argument's choices.
        for action in parser._actions:
            if action.dest == "kind" and action.choices is not None:
                action.choices = [*action.choices, "history"]
    parser.epilog = ((parser.epilog + "\n") if parser.epilog else "") + HELP


def with_history(other: ImportHandler | None) -> ImportHandler:
    """The `import` handler: history here, every other kind to the knowledge import."""

    async def handler(settings: Settings, args: argparse.Namespace) -> int:
        if args.kind == "history":
            return await cmd_import_history(settings, args)
        if other is None:
            raise ValueError(f"unknown import kind {args.kind!r}")
        return await other(settings, args)

    return handler


async def cmd_import_history(settings: Settings, args: argparse.Namespace) -> int:
    from bot.profiles.history import import_history, parse_history

    merchant = args.merchant or settings.merchant
    lines = parse_history(Path(args.file))  # every line checked before anything is stored

    from bot.profiles.catalog import CatalogCache
    from bot.profiles.ingest import ProfileWriter
    from bot.progress import progress_bar, status
    from bot.storage.store import Store
    from lm_service.client import create_lm_client

    store = Store(settings.redis_url, settings.data_dir)
    lm = create_lm_client(settings, redis=None)
    with status("Loading the embedding model..."):
        await store.start()
        await lm.start()
    try:
        await store.register_merchant(merchant)
        writer = ProfileWriter(store, CatalogCache(store, lm), settings.profile_retention_days,
                               settings.profile_summary_every)
        with progress_bar("Learning from history", len(lines)) as bar:
            task = bar.task_ids[0]

            def advance(n: int) -> None:
                bar.advance(task, n)

            result = await import_history(writer, lm, merchant, lines, settings.profile_batch,
                                          advance)
    finally:
        await lm.stop()
        await store.stop()
    print(f"History for {merchant} from {Path(args.file).name}: {result.messages} messages "
          f"from {result.members} members folded into profiles ({result.skipped} empty or "
          "command lines skipped).", file=sys.stdout)
    return 0
