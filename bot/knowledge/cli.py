"""`shopkeep import faq|catalog FILE [--merchant M] [--replace]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.knowledge.files import parse_catalog, parse_faq, read_file
from bot.knowledge.store import KnowledgeStore, texts_to_embed
from bot.settings import Settings


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "import", help="import an FAQ (YAML, JSON, CSV) or a catalog (CSV, JSON)",
        description="Validate FILE and store it for the merchant. A file with any error "
        "changes nothing and every problem is listed by row. Entries are updated by id (FAQ) "
        "or sku (catalog); entries missing from the file are kept unless --replace is given.",
    )
    parser.add_argument("kind", choices=["faq", "catalog"], help="what the file holds")
    parser.add_argument("file", type=Path, help="the file to import")
    parser.add_argument("--merchant", help="merchant to import for (default: default)")
    parser.add_argument("--replace", action="store_true",
                        help="remove entries that are not in the file")
    return parser


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.progress import progress_bar, status
    from bot.storage.store import Store
    from lm_service.client import create_lm_client

    merchant = args.merchant or settings.merchant
    data = read_file(args.file)
    records: list[Any] = (parse_faq(data, args.file.name) if args.kind == "faq"
                          else parse_catalog(data, args.file.name))
    store = Store(settings.redis_url, settings.data_dir)
    lm = create_lm_client(settings, redis=None)
    with status("Loading the embedding model..."):
        await store.start()
        await lm.start()
    try:
        await store.register_merchant(merchant)
        knowledge = KnowledgeStore(store, lm)
        with progress_bar(f"Embedding {args.kind}", texts_to_embed(records)) as bar:
            task = bar.task_ids[0]

            def advance(n: int) -> None:
                bar.advance(task, n)

            if args.kind == "faq":
                report = await knowledge.import_faq(merchant, records, args.replace, advance)
            else:
                report = await knowledge.import_catalog(merchant, records, args.replace,
                                                        advance)
    finally:
        await lm.stop()
        await store.stop()
    what = "FAQ" if args.kind == "faq" else "Catalog"
    print(report.summary(f"{what} for {merchant} from {args.file.name}"), file=sys.stdout)
    return 0
