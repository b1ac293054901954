"""Two real OS processes, each with its own APScheduler on one Redis job store, race for the
same campaign runs: every run posts once per target."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from bot.campaigns.models import Campaign, ScheduleSpec, parse_targets
from bot.storage.keys import Keys, merchants
from tests.campaigns.process_main import POSTS_KEY

KEYS = Keys("default")
ROOT = __file__.rsplit("/tests/", 1)[0]


async def test_two_scheduler_processes_post_each_run_once(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    await redis_client.sadd(merchants(), "default")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    names = [f"race{i}" for i in range(10)]
    for name in names:
        campaign = Campaign(
            merchant="default", name=name, brief="race", approved_text=f"post {name}",
            schedule=ScheduleSpec("once", due.isoformat(), "UTC"),
            targets=parse_targets(f"discord:{name}-a,discord:{name}-b"))
        await redis_client.sadd(KEYS.campaign_names(), name)
        await redis_client.hset(KEYS.campaign(name), mapping=dict(campaign.to_hash()))
    # Neither process was told about the runs: each finds the campaigns at start and
    # schedules them (the same job ids), then both poll the shared store every 50 ms.
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.campaigns.process_main", redis_url, tag, "14",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for tag in ("p1", "p2")]
    outputs = await asyncio.gather(*(p.communicate() for p in processes))
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
    reports = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    posts = [json.loads(p) for p in await redis_client.lrange(POSTS_KEY, 0, -1)]
    per_channel = Counter(p["channel"] for p in posts)
    assert per_channel == Counter({f"{n}-{s}": 1 for n in names for s in "ab"}), reports
    assert all(p["text"] == f"post {p['channel'][:-2]}" for p in posts)
    fired = Counter(status for report in reports for status in report["results"])
    assert fired["done"] == len(names)  # each run completed once, whichever process fired it
