"""A bot process that runs one campaign run and exits: what the kill-mid-campaign test starts
(and SIGKILLs) as a real child process. Prints one JSON line with the run's result."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import cast

from adapters.discord import DiscordAdapter
from bot.campaigns import CampaignFeature
from bot.core import Core
from bot.outbox import Outbox
from bot.settings import load_settings
from lm_service.api import LMClient
from tests.faults.support import CommandPipeline


async def run(args: argparse.Namespace) -> dict[str, object]:
    settings = load_settings(redis_url=args.redis, data_dir=Path(tempfile.mkdtemp()),
                             demo_shop=False, campaign_lock_ttl_s=args.lock_ttl)
    host = CommandPipeline(args.redis)
    await host.start()
    adapter = DiscordAdapter(args.token, api_url=args.api, gateway_url=args.gateway,
                             guild_ready_timeout=0.2)
    await adapter.start(host)
    outbox = Outbox()
    outbox.attach(adapter)
    # An approved campaign posts its approved text: the model is never asked, so this
    # process loads none (any use would fail loudly).
    core = Core(settings, host.store, cast(LMClient, None), host.tenancy, host.registry, outbox)
    feature = CampaignFeature(core)
    print(json.dumps({"event": "ready"}), flush=True)
    try:
        while True:  # what the scheduler does: a run locked by a dead process is retried
            result = await feature.runner.run(args.campaign, args.run)
            if result.status != "locked":
                break
            await asyncio.sleep(0.2)
    finally:
        await adapter.stop()
        await host.stop()
    return {"event": "result", "status": result.status, "sent": result.sent,
            "resumed": result.resumed, "failed": result.failed}


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("redis", "api", "gateway", "token", "campaign", "run"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--lock-ttl", type=float, default=1.0)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
