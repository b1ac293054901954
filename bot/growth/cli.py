"""`shopkeep stats`: the community analytics of /stats, on the command line (text or JSON)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bot.growth.analytics import Analytics, format_report
from bot.growth.linking import Linking
from bot.growth.periods import Calendar
from bot.growth.referrals import Referrals
from bot.settings import Settings
from bot.storage.store import Store


def add_parser(sub: Any) -> None:
    """Register `shopkeep stats` on the top-level sub-parsers."""
    stats = sub.add_parser(
        "stats", help="community analytics: active members, questions, sources, referrals",
        description="Print the figures moderators see with /stats: active members over 1, 7 "
        "and 30 days, messages, questions answered vs not, the sources used most, top "
        "interests, campaign deliveries and referrals, per platform and combined. No model "
        "is loaded.",
    )
    stats.add_argument("--merchant", help="merchant to report on (default: default)")
    stats.add_argument("--days", type=int, default=7, help="period in days, 1-60 (default 7)")
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")


async def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    merchant = args.merchant or settings.merchant
    if not 1 <= args.days <= 60:
        raise ValueError("--days must be between 1 and 60")
    store = Store(settings.redis_url, settings.data_dir)
    await store.start()
    try:
        calendar = Calendar(settings.timezone)
        now = time.time()
        linking = Linking(store.redis, settings.link_code_ttl_s)
        referrals = Referrals(store.redis, calendar, linking.canonical,
                              settings.referral_stay_days, settings.referral_min_messages)
        await referrals.settle(merchant, now)
        report = await Analytics(store.redis, calendar).report(merchant, now, args.days)
    finally:
        await store.stop()
    if args.json:
        print(json.dumps({"merchant": merchant, **report.as_dict()}, ensure_ascii=False))
    else:
        print(format_report(report))
    return 0
