"""One Shopkeep-like process for the multi-process test: the campaigns feature with its own
scheduler on a shared Redis, posting through an edge adapter that records into Redis.

Run: python -m tests.campaigns.process_main REDIS_URL NAME SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import cast

import redis.asyncio as aioredis

from bot.campaigns import CampaignFeature
from bot.commands.registry import CommandRegistry
from bot.core import Core
from bot.events import Outbound, Platform
from bot.outbox import Outbox
from bot.ports import Adapter, AdapterHost, Capabilities
from bot.settings import load_settings
from bot.storage.store import Store
from bot.tenancy import Tenancy
from lm_service.api import LMClient

POSTS_KEY = "sk:_test:posts"  # every send of every process, in order


class RedisRecordingAdapter(Adapter):
    platform = Platform.DISCORD
    capabilities = Capabilities(max_message_length=2000)

    def __init__(self, redis: aioredis.Redis, process: str) -> None:
        self.redis = redis
        self.process = process

    async def start(self, host: AdapterHost) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, outbound: Outbound) -> list[str]:
        dest = outbound.destination
        record = {"process": self.process, "channel": dest.channel_id if dest else None,
                  "key": outbound.idempotency_key, "text": outbound.text}
        count = await self.redis.rpush(POSTS_KEY, json.dumps(record))
        return [str(count)]


async def main(url: str, name: str, seconds: float) -> None:
    settings = load_settings(redis_url=url, data_dir=Path("var"), demo_shop=False,
                             campaign_poll_s=0.05)
    store = Store(url, settings.data_dir)
    await store.start()
    outbox = Outbox()
    outbox.attach(RedisRecordingAdapter(store.redis, name))
    core = Core(settings, store, cast(LMClient, None), Tenancy(store), CommandRegistry(), outbox)
    feature = CampaignFeature(core)
    await feature.start()
    print("ready", flush=True)
    try:
        await asyncio.sleep(seconds)
    finally:
        results = [r.status for _, _, r in feature.scheduler.results]
        await feature.stop()
        await store.stop()
    print(json.dumps({"process": name, "results": results}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
