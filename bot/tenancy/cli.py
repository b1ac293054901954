"""`shopkeep communities list|code|approve|revoke`: which groups and servers a merchant serves."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bot.settings import Settings
from bot.storage.keys import validate_merchant_id
from bot.storage.store import Store
from bot.tenancy.codes import DEFAULT_TTL_S, MAX_TTL_S, SetupCodes
from bot.tenancy.commands import describe
from bot.tenancy.communities import Communities, parse_community
from bot.tenancy.holdings import communities_with_data

HELP = """\
A Telegram group or Discord server gets answers and commands only once its merchant approved
it. Approve one by id (telegram:<chat id>, discord:<server id>), list them in
SHOPKEEP_COMMUNITIES, or print a one-time code that an admin of the new community types there
as /setup CODE.

  shopkeep communities list                     approved, waiting, and holding data
  shopkeep communities code [--minutes 30]      a one-time setup code
  shopkeep communities approve telegram:-100123 discord:4567
  shopkeep communities approve --existing       every community that already holds data
  shopkeep communities revoke discord:4567
"""


def add_parser(sub: Any) -> None:
    """Register `shopkeep communities` on the top-level sub-parsers."""
    parser = sub.add_parser(
        "communities", help="approve, list and revoke the groups and servers the bot serves",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="approved communities, requests, and "
                                 "communities that hold data but are not approved")
    code = actions.add_parser("code", help="print a one-time code for /setup CODE")
    code.add_argument("--minutes", type=int, default=DEFAULT_TTL_S // 60,
                      help=f"how long the code stays valid (default {DEFAULT_TTL_S // 60})")
    approve = actions.add_parser("approve", help="approve communities by id")
    approve.add_argument("community", nargs="*",
                         help="telegram:<chat id> or discord:<server id>")
    approve.add_argument("--existing", action="store_true",
                         help="approve every community that already holds the merchant's data")
    revoke = actions.add_parser("revoke", help="stop serving communities")
    revoke.add_argument("community", nargs="+", help="telegram:<chat id> or discord:<server id>")
    for action in (listing, code, approve, revoke):
        action.add_argument("--merchant", help="merchant to act for (default: default)")


async def cmd_communities(settings: Settings, args: argparse.Namespace) -> int:
    merchant = validate_merchant_id(args.merchant or settings.merchant)
    if args.action == "approve" and not args.community and not args.existing:
        raise ValueError("name the communities to approve (telegram:<chat id>, "
                         "discord:<server id>), or give --existing")
    if args.action == "code" and not 1 <= args.minutes <= MAX_TTL_S // 60:
        raise ValueError(f"--minutes must be between 1 minute and {MAX_TTL_S // 86400} days "
                         f"({MAX_TTL_S // 60} minutes)")
    named = [parse_community(c) for c in getattr(args, "community", [])]
    store = Store(settings.redis_url, settings.data_dir)
    await store.start()
    try:
        await store.register_merchant(merchant)
        communities = Communities(store.redis)
        if args.action == "code":
            code = await SetupCodes(store.redis).create(merchant, args.minutes * 60)
            print(f"Setup code for {merchant}: {code}\nAn admin of the new group or server types "
                  f"/setup {code} there within {args.minutes} minutes; the code works once.")
        elif args.action == "list":
            await _list(store, communities, merchant)
        elif args.action == "approve":
            todo = [(key, "cli") for key in named]
            if args.existing:
                held = await communities_with_data(store.redis, merchant)
                todo += [(key, "existing") for key in sorted(held)
                         if key not in named and await communities.owner(key) is None]
            if not todo:
                print("Nothing to approve: every community holding data is approved already.")
            for key, how in todo:
                new = await communities.approve(merchant, key, how, "shopkeep communities")
                print(f"{key}: {'approved' if new else 'already approved'} for {merchant}")
        else:
            for key in named:
                done = await communities.revoke(merchant, key)
                print(f"{key}: {'revoked' if done else 'was not approved'} for {merchant}")
    finally:
        await store.stop()
    return 0


async def _list(store: Store, communities: Communities, merchant: str) -> None:
    approved = await communities.approved(merchant)
    print(f"Communities of {merchant}:")
    for approval in approved:
        print(describe(approval))
    if not approved:
        print("• none approved yet")
    approved_keys = {a.community for a in approved}
    held = await communities_with_data(store.redis, merchant)
    waiting = sorted(c for c in held if c not in approved_keys)
    if waiting:
        print("Holding data, not approved (served again once approved):")
        for key in waiting:
            owner = await communities.owner(key)
            note = " — connected to another merchant" if owner else ""
            print(f"• {key} — holds {', '.join(sorted(held[key]))}{note}")
        print(f"Approve them all: shopkeep communities approve --existing"
              f"{'' if merchant == 'default' else f' --merchant {merchant}'}")
    requests = [r for r in await communities.requests()
                if await communities.owner(r.community) is None]
    if requests:
        print("Asked with /setup, waiting for approval:")
        for request in requests:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(request.at))
            print(f"• {request.community} — asked by {request.by} on {when}")
