"""A bot process that runs one campaign run and exits: what the kill-mid-campaign tests start
(and SIGKILL) as a real child process, on Discord or Telegram. `--mode direct` runs the run
at once (retrying while another process holds it); `--mode scheduler` leaves it to this
process's campaign scheduler, as `shopkeep run` would. Prints one JSON line with the result."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from bot.campaigns import CampaignFeature
from bot.campaigns.runner import FINAL, RunResult
from bot.core import Core
from bot.outbox import Outbox
from bot.ports import Adapter
from bot.settings import load_settings
from lm_service.api import LMClient
from tests.faults.support import CommandPipeline


async def run(args: argparse.Namespace) -> dict[str, object]:
    settings = load_settings(redis_url=args.redis, data_dir=Path(tempfile.mkdtemp()),
                             demo_shop=False, campaign_lock_ttl_s=args.lock_ttl,
                             campaign_poll_s=0.2)
    host = CommandPipeline(args.redis)
    await host.start()
    adapter: Adapter
    if args.platform == "telegram":
        adapter = TelegramAdapter(args.token, args.api, poll_timeout_s=1)
    else:
        adapter = DiscordAdapter(args.token, api_url=args.api, gateway_url=args.gateway,
                                 guild_ready_timeout=0.2)
    await adapter.start(host)
    outbox = Outbox()
    outbox.attach(adapter)
    # An approved campaign posts its approved text: the model is never asked, so this
    # process loads none (any use would fail loudly).
    core = Core(settings, host.store, cast(LMClient, None), host.tenancy, host.registry, outbox)
    feature = CampaignFeature(core)
    print(json.dumps({"event": "ready", "at": time.time()}), flush=True)
    try:
        if args.mode == "scheduler":
            result = await _scheduled(feature)
        else:
            while True:  # what the scheduler does: a run locked by a dead process is retried
                result = await feature.runner.run(args.campaign, args.run)
                if result.status != "locked":
                    break
                await asyncio.sleep(0.2)
    finally:
        await adapter.stop()
        await host.stop()
    return {"event": "result", "status": result.status, "sent": result.sent,
            "resumed": result.resumed, "failed": result.failed,
            "uncertain": result.uncertain}


async def _scheduled(feature: CampaignFeature) -> RunResult:
    await feature.start()
    try:
        while True:  # the scheduler records each result once the runner returns it
            finished = [r for _, _, r in feature.scheduler.results if r.status in FINAL]
            if finished:
                return finished[0]
            await asyncio.sleep(0.05)
    finally:
        await feature.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("redis", "api", "token", "campaign", "run"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--gateway", default="")
    parser.add_argument("--platform", choices=("discord", "telegram"), default="discord")
    parser.add_argument("--mode", choices=("direct", "scheduler"), default="direct")
    parser.add_argument("--lock-ttl", type=float, default=1.0)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
