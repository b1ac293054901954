"""Server time of every dashboard page with 10,000 members in Redis: p50 and p95 per page.

    python bench/dashboard.py [--members 10000] [--requests 40] [--redis-url URL] [--json]

"Server" is the time from the request reaching the app to its response starting (the
Server-Timing header every page sends); "HTTP" adds the loopback round trip as a client
sees it (a new connection per request). Seeds one merchant through the features' own
write paths where they have one (analytics counters, campaign runs and deliveries, the
audit log), and profiles, FAQ entries and products as the stores keep them; then starts
the app with its dashboard on loopback and requests each page in turn as a signed-in
moderator over HTTP (uvicorn, as in production).
The model is never loaded: no page render calls it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.web import WebDashboard  # noqa: E402
from bot.app import App  # noqa: E402
from bot.campaigns import CampaignFeature  # noqa: E402
from bot.campaigns.models import Campaign, Delivery, ScheduleSpec, Target  # noqa: E402
from bot.dashboard import DashboardFeature  # noqa: E402
from bot.dashboard.access import Grant  # noqa: E402
from bot.events import Citation, Platform, Privilege  # noqa: E402
from bot.growth import GrowthFeature  # noqa: E402
from bot.knowledge.files import parse_catalog, parse_faq  # noqa: E402
from bot.knowledge.store import _to_hash  # noqa: E402
from bot.profiles.model import Profile  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from lm_service.local import InProcessLMClient  # noqa: E402

MERCHANT = "default"
DEMO = ROOT / "examples" / "demo-shop"
DAYS = 30
INTERESTS = ["c:tents", "c:sleeping bags", "c:stoves", "t:ultralight", "t:winter", "c:packs"]


async def seed(app: App, members: int, rng: random.Random) -> list[str]:
    redis, keys = app.store.redis, app.store.keys(MERCHANT)
    now = time.time()
    member_keys = [f"{'telegram' if i % 2 else 'discord'}:{100000 + i}" for i in range(members)]
    for start in range(0, members, 1000):  # profiles as the profile writer stores them
        async with redis.pipeline(transaction=False) as pipe:
            for key in member_keys[start:start + 1000]:
                seen = now - rng.uniform(0, DAYS * 86400)
                profile = Profile(member=key, affinity={i: round(rng.random(), 3) for i in
                                                        rng.sample(INTERESTS, 3)},
                                  messages=rng.randint(1, 400), on_topic=rng.randint(0, 50),
                                  first_seen=seen - 86400 * 40, last_seen=seen,
                                  platforms={key.split(":")[0]},
                                  recent=["looking for a tent", "thanks!"])
                pipe.hset(keys.profile(key), mapping=profile.to_hash())
                pipe.zadd(keys.profile_index(), {key: seen})
            await pipe.execute()
    growth = app.feature(GrowthFeature)
    analytics = growth.analytics
    sem = asyncio.Semaphore(64)

    async def day_of_activity(day: int) -> None:
        ts = now - day * 86400
        active = rng.sample(member_keys, max(1, members // 12))
        for key in active:
            async with sem:
                await analytics.record_message(MERCHANT, key.split(":")[0], key, key, ts)
        for n in range(members // 50):
            async with sem:
                await analytics.record_answer(
                    MERCHANT, "telegram" if n % 2 else "discord", n % 5 != 0,
                    (Citation("faq", f"faq-{n % 20}", f"FAQ {n % 20}"),), ts)
        await analytics.record_interests(MERCHANT, ["tents", "stoves"], ts)

    await asyncio.gather(*(day_of_activity(d) for d in range(DAYS)))
    async with redis.pipeline(transaction=False) as pipe:  # knowledge as the store keeps it
        for entry in parse_faq((DEMO / "faq.yaml").read_bytes(), "faq.yaml"):
            pipe.hset(keys.faq(entry.id), mapping=_to_hash(entry))
            pipe.sadd(keys.faq_ids(), entry.id)
        for product in parse_catalog((DEMO / "catalog.csv").read_bytes(), "catalog.csv"):
            pipe.hset(keys.product(product.sku), mapping=_to_hash(product))
            pipe.sadd(keys.product_skus(), product.sku)
        await pipe.execute()
    campaigns = app.feature(CampaignFeature)
    await campaigns.repo.note_channel(MERCHANT, "telegram:-1001")
    for n in range(20):
        campaign = Campaign(
            merchant=MERCHANT, name=f"c-{n}", brief="Spring tents", created_at=now,
            schedule=ScheduleSpec("interval", "86400", "UTC", anchor="2026-01-01T09:00:00+00:00"),
            targets=(Target(Platform.TELEGRAM, "-1001"), Target(None)),
            draft_text="Spring is here.", approved_text="Spring is here.")
        await campaigns.repo.create(campaign)
        for run in range(10):
            run_id = f"2026-11-{run + 1:02d}T09:00:00+00:00"
            await campaigns.repo.record_run(MERCHANT, campaign.name, run_id, now - run * 86400,
                                            status="done", sent=50, failed=0, skipped=0)
            for target in member_keys[:50]:
                await campaigns.repo.record_delivery(MERCHANT, campaign.name, run_id,
                                                     Delivery(target, "sent", ["1"], now))
    audit = app.feature(DashboardFeature).audit
    for n in range(2000):
        await audit.record(MERCHANT, "telegram:1", "Mod", "faq.edit", f"entry {n}")
    return member_keys


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        web = WebDashboard("127.0.0.1", 0)
        settings = load_settings(redis_url=args.redis_url, data_dir=Path(folder),
                                 demo_shop=False, digest_enabled=False)
        # Handed over unstarted: a page that called the model would fail loudly here.
        app = App(settings, lm=InProcessLMClient(), front_ends=[web])
        await app.start()
        try:
            if args.redis_url:
                await app.store.redis.flushdb()
            started = time.perf_counter()
            member_keys = await seed(app, args.members, rng)
            seeded_s = time.perf_counter() - started
            dashboard = app.feature(DashboardFeature)
            session = await dashboard.access.open_session(
                Grant(MERCHANT, "telegram:1", "Bench", int(Privilege.MODERATOR)))
            pages = ["/", "/?days=30", "/faq", "/catalog", "/gaps", "/campaigns",
                     "/campaigns/c-3", "/members", "/members?page=100",
                     f"/members/{member_keys[7]}", "/persona", "/tickets", "/audit"]
            results: dict[str, dict[str, float]] = {}
            for path in pages:
                server, total = [], []
                for n in range(args.requests + 3):
                    began = time.perf_counter()
                    status, headers, body = await _get(web.port, f"/m/{MERCHANT}{path}",
                                                       session.id)
                    elapsed = (time.perf_counter() - began) * 1000
                    if status != 200:
                        raise SystemExit(f"{path}: HTTP {status}")
                    if n >= 3:  # the first requests warm template caches
                        server.append(float(headers["server-timing"].split("dur=")[1]))
                        total.append(elapsed)
                results[path] = {"server_p50_ms": _pct(server, 50),
                                 "server_p95_ms": _pct(server, 95),
                                 "http_p50_ms": _pct(total, 50),
                                 "http_p95_ms": _pct(total, 95), "bytes": len(body)}
        finally:
            await app.stop()
    return {"members": args.members, "requests_per_page": args.requests,
            "seed_s": round(seeded_s, 1), "pages": results}


async def _get(port: int, path: str, session_id: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on a new connection, read to the end. A plain socket: httpx's client added a
    steady ~45 ms per request on loopback here (1.5 ms with a socket for the same file)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 f"Cookie: shopkeep_session={session_id}\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    if pct == 50:
        return round(statistics.median(ordered), 1)
    return round(ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page")
    parser.add_argument("--redis-url", help="a Redis to use (flushed!); default: embedded")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['members']} members, {result['requests_per_page']} requests per page "
          f"(seeded in {result['seed_s']} s)")
    print(f"{'page':<28}{'server p50':>11}{'server p95':>11}{'HTTP p50':>10}{'HTTP p95':>10}"
          f"{'bytes':>9}")
    for path, f in result["pages"].items():
        print(f"{path:<28}{f['server_p50_ms']:>11}{f['server_p95_ms']:>11}"
              f"{f['http_p50_ms']:>10}{f['http_p95_ms']:>10}{f['bytes']:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
