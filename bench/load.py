"""Load benchmark: simulated members chat and ask across Telegram and Discord stand-ins.

The whole bot runs in this process (real adapters over HTTP/WebSocket to the stand-ins in
tests/standins, the real model, an embedded Redis). Members write chatter and @-mention
questions at set rates for `--duration` seconds; the report gives end-to-end reply latency
(p50/p95/p99), messages handled per second, LM tokens/s, 429s the platforms answered, lost and
duplicated replies, and RSS. `--transport core` drives `App.handle` directly instead.

    python bench/load.py --duration 60                  # a table
    python bench/load.py --duration 600 --json          # the goal: 20 chatter/s + 3 questions/s
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the stand-ins live in tests/, next to the package

from bot.app import App  # noqa: E402
from bot.events import CommunityRef, Inbound, MemberRef, Platform  # noqa: E402
from bot.ops.metrics import METRICS  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from lm_service.api import LMClient  # noqa: E402

OUTCOMES = ("ok", "silent", "user_error", "storage_down", "lm_busy", "lm_timeout",
            "lm_unavailable", "error")
LM_OUTCOMES = ("ok", "busy", "timeout", "unavailable", "error")
QUESTIONS = (
    "do you ship to Canada?", "how long does delivery take?", "can I return a used tent?",
    "which sleeping bag is warmest?", "do you have a 2 person tent?", "what is your "
    "warranty?", "how do I clean a down jacket?", "is the stove allowed on planes?",
    "do you price match?", "what size backpack for a weekend trip?",
)
CHATTER = (
    "morning all", "just got back from the lake, amazing weekend", "anyone hiking this "
    "saturday", "lol same", "my boots finally broke in", "the new trail map is great",
    "rain all week here", "thanks everyone!", "photos from the ridge later", "nice one",
)


@dataclass
class Question:
    platform: str
    key: str  # the platform message id the reply will point at
    sent_at: float
    replies: list[float] = field(default_factory=list)


@dataclass
class Load:
    questions: dict[tuple[str, str], Question] = field(default_factory=dict)
    chatter_sent: int = 0
    question_sent: int = 0


def _sample(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class StandIns:
    """Telegram and Discord stand-ins with real adapters; members spread over many groups."""

    def __init__(self, members: int, groups: int) -> None:
        from tests.standins.discord_api import DiscordStandIn, _user
        from tests.standins.telegram_api import TelegramStandIn

        # Telegram's real flood limits, so that a 429 means the adapter's limiter failed.
        self.tg = TelegramStandIn(chat_limit=(20, 60.0), global_limit=(30, 1.0))
        self.dc = DiscordStandIn()
        self.groups = [-(1000 + g) for g in range(groups)]
        self.members = members
        self.dc_users = [str(100 + i) for i in range(members)]
        for uid in self.dc_users:
            self.dc.users[uid] = _user(uid, f"member{uid}")
            self.dc.member_roles[uid] = []
        self._ids = itertools.count(10_000)
        self._seen = {"telegram": 0, "discord": 0}

    async def start(self) -> list[Any]:
        from adapters.discord import DiscordAdapter
        from adapters.telegram import TelegramAdapter

        await self.tg.start()
        await self.dc.start()
        for chat in self.groups:
            self.tg.group(chat, title=f"fans {chat}")
        return [TelegramAdapter(self.tg.token, self.tg.base_url, poll_timeout_s=1),
                DiscordAdapter(self.dc.token, api_url=self.dc.api_url,
                               gateway_url=self.dc.gateway_url, guild_ready_timeout=0.5)]

    async def stop(self) -> None:
        await self.tg.stop()
        await self.dc.stop()

    def communities(self) -> list[str]:
        """The groups and the server the crowd writes in: the shop's own, approved."""
        return [f"telegram:{chat}" for chat in self.groups] + [f"discord:{self.dc.guild_id}"]

    async def send(self, rng: random.Random, question: bool, load: Load) -> None:
        text = rng.choice(QUESTIONS if question else CHATTER)
        member = rng.randrange(self.members)
        if rng.random() < 0.5:
            message_id = next(self._ids)
            body = f"@{self.tg.username} {text}" if question else text
            self.tg.message(rng.choice(self.groups), 1 + member, body, message_id=message_id)
            platform, key = "telegram", str(message_id)
        else:
            body = f"<@{self.dc.bot_id}> {text}" if question else text
            key = await self.dc.message(self.dc_users[member], body)
            platform = "discord"
        if question:
            load.questions[(platform, key)] = Question(platform, key, time.perf_counter())

    def collect(self, load: Load) -> None:
        """Note the arrival of every reply the bot posted since the last call."""
        now = time.perf_counter()
        for sent in self.tg.sent[self._seen["telegram"]:]:
            self._note(load, "telegram", str(sent.reply_to), now)
        self._seen["telegram"] = len(self.tg.sent)
        for dsent in self.dc.sent[self._seen["discord"]:]:
            ref = (dsent.reference or {}).get("message_id")
            self._note(load, "discord", str(ref), now)
        self._seen["discord"] = len(self.dc.sent)

    @staticmethod
    def _note(load: Load, platform: str, key: str, now: float) -> None:
        question = load.questions.get((platform, key))
        if question is not None:
            question.replies.append(now)

    def rejected_429(self) -> int:
        discord = sum(1 for _, _, status, _ in self.dc.requests if status == 429)
        return self.tg.rejected[429] + discord


class CoreOnly:
    """No platform: Inbound messages straight into `App.handle`."""

    def __init__(self, members: int, groups: int) -> None:
        self.members = members
        self.groups = groups
        self.app: App | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> list[Any]:
        return []

    def communities(self) -> list[str]:
        return [f"telegram:{n}" for n in range(self.groups)]

    async def stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def send(self, rng: random.Random, question: bool, load: Load) -> None:
        assert self.app is not None
        member = str(rng.randrange(self.members))
        inbound = Inbound(
            platform=Platform.TELEGRAM, member=MemberRef(Platform.TELEGRAM, member, member),
            text=rng.choice(QUESTIONS if question else CHATTER), mentions_bot=question,
            community=CommunityRef(Platform.TELEGRAM, str(rng.randrange(self.groups)), "c"),
        )
        record = Question("core", inbound.message_id, time.perf_counter())
        if question:
            load.questions[("core", inbound.message_id)] = record

        async def run() -> None:
            assert self.app is not None
            replies = await self.app.handle(inbound)
            record.replies.extend(time.perf_counter() for _ in replies)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def collect(self, load: Load) -> None:
        return None

    def rejected_429(self) -> int:
        return 0


async def drive(transport: StandIns | CoreOnly, args: argparse.Namespace, load: Load) -> None:
    """Poisson arrivals at the two rates for `args.duration` seconds."""
    rng = random.Random(args.seed)
    rate = args.chatter_rate + args.question_rate
    p_question = args.question_rate / rate
    end = time.perf_counter() + args.duration
    next_at = time.perf_counter()
    while next_at < end:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        question = rng.random() < p_question
        await transport.send(rng, question, load)
        if question:
            load.question_sent += 1
        else:
            load.chatter_sent += 1
        transport.collect(load)
        next_at += rng.expovariate(rate)


async def run(args: argparse.Namespace, lm: LMClient | None = None) -> dict[str, Any]:
    """One load run; `lm` may be given already started (tests share one loaded model)."""
    transport: StandIns | CoreOnly = (StandIns(args.members, args.groups)
                                      if args.transport == "standins"
                                      else CoreOnly(args.members, args.groups))
    adapters = await transport.start()
    data_dir = Path(tempfile.mkdtemp(prefix="shopkeep-load-"))
    # The per-member and per-community limits would answer "slow down" to a synthetic crowd;
    # this measures capacity, so they are raised (and reported).
    settings = load_settings(data_dir=data_dir, demo_shop=True,
                             member_messages_per_minute=args.member_limit,
                             community_messages_per_minute=100_000,
                             reply_mode=args.reply_mode,
                             communities=transport.communities())
    owns_lm = lm is None
    started = time.perf_counter()
    if lm is None:
        lm = _build_lm(settings)
        await lm.start()
    app = App(settings, adapters=adapters, lm=lm)
    if isinstance(transport, CoreOnly):
        transport.app = app
    await app.start()
    start_s = time.perf_counter() - started
    load = Load()
    before = {"in": _sum("shopkeep_messages_in_total"),
              "tokens": _sample("shopkeep_lm_tokens_total", direction="completion"),
              "lag_count": _sum("shopkeep_event_loop_lag_seconds_count"),
              **{f"gen_{o}": _sum("shopkeep_lm_requests_total", kind="generate", outcome=o)
                 for o in LM_OUTCOMES},
              "lag_sum": _sum("shopkeep_event_loop_lag_seconds_sum"),
              **{o: _sum("shopkeep_replies_total", outcome=o) for o in OUTCOMES}}
    lag_max = 0.0
    tick = time.perf_counter()
    rss_peak = _rss_mb()
    began = time.perf_counter()
    try:
        driver = asyncio.create_task(drive(transport, args, load))
        while not driver.done():
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            lag_max = max(lag_max, now - tick - 0.05)  # the loop was blocked this long
            tick = now
            transport.collect(load)
            rss_peak = max(rss_peak, _rss_mb())
        await driver
        deadline = time.perf_counter() + args.grace
        sent = load.chatter_sent + load.question_sent
        # Until every question has its reply and every message reached the core (the last
        # ones may still be in a poll or on the gateway).
        while time.perf_counter() < deadline and (
                any(not q.replies for q in load.questions.values())
                or _sum("shopkeep_messages_in_total") - before["in"] < sent):
            await asyncio.sleep(0.05)
            transport.collect(load)
        await app.router.drain()
        elapsed = time.perf_counter() - began
        transport.collect(load)
        handled = _sum("shopkeep_messages_in_total") - before["in"]
        tokens = _sample("shopkeep_lm_tokens_total", direction="completion") - before["tokens"]
        rejected = transport.rejected_429()
        outcomes = {o: int(_sum("shopkeep_replies_total", outcome=o) - before[o])
                    for o in OUTCOMES}
        generations = {o: int(_sum("shopkeep_lm_requests_total", kind="generate", outcome=o)
                              - before[f"gen_{o}"]) for o in LM_OUTCOMES}
        lags = _sum("shopkeep_event_loop_lag_seconds_count") - before["lag_count"]
        lag = {"loop_lag_mean_s": round((_sum("shopkeep_event_loop_lag_seconds_sum")
                                         - before["lag_sum"]) / lags, 3) if lags else None,
               "loop_lag_max_s": round(lag_max, 3),
               "lm_generations": {k: v for k, v in generations.items() if v}}
    finally:
        await app.stop()
        await transport.stop()
        if owns_lm:
            await lm.stop()
    return {**_report(args, load, handled, tokens, elapsed, rejected, rss_peak, start_s,
                      outcomes), **lag}


def _build_lm(settings: Settings) -> LMClient:
    """The default in-process engine, with its converted-model cache in ./var/models (shared
    with `make run`) rather than in this run's throwaway data folder."""
    cached = settings.model_copy(update={"data_dir": ROOT / "var"})
    try:
        from lm_service.client import create_lm_client
    except ImportError:  # the factory is not there yet: the engine's own client
        from lm_service.local import InProcessLMClient

        return InProcessLMClient.from_settings(cached)
    return create_lm_client(cached, redis=None)


def _sum(name: str, **labels: str) -> float:
    """A metric summed over every label set that matches `labels`."""
    total = 0.0
    for metric in METRICS.registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _report(args: argparse.Namespace, load: Load, handled: float, tokens: float,
            elapsed: float, rejected: int, rss_peak: float, start_s: float,
            outcomes: dict[str, int]) -> dict[str, Any]:
    latencies = sorted(q.replies[0] - q.sent_at for q in load.questions.values() if q.replies)
    sent = load.chatter_sent + load.question_sent

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)

    return {
        "transport": args.transport, "duration_s": args.duration,
        "chatter_rate": args.chatter_rate, "question_rate": args.question_rate,
        "members": args.members, "member_limit_per_min": args.member_limit,
        "reply_mode": args.reply_mode,
        "startup_s": round(start_s, 1),
        "messages_sent": sent, "questions_sent": load.question_sent,
        "messages_handled": int(handled), "messages_lost_inbound": int(sent - handled),
        "elapsed_s": round(elapsed, 1),
        "handled_per_s": round(handled / elapsed, 2),
        "outcomes": {k: v for k, v in outcomes.items() if v},
        "replies": len(latencies),
        "lost_replies": sum(1 for q in load.questions.values() if not q.replies),
        "duplicated_replies": sum(1 for q in load.questions.values() if len(q.replies) > 1),
        "latency_p50_s": pct(0.50), "latency_p95_s": pct(0.95), "latency_p99_s": pct(0.99),
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "lm_tokens_per_s": round(tokens / elapsed, 1),
        "http_429s": rejected,
        "rss_peak_mb": round(rss_peak, 1), "rss_end_mb": round(_rss_mb(), 1),
    }


def _table(result: dict[str, Any]) -> str:
    width = max(len(k) for k in result)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in result.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--chatter-rate", type=float, default=20.0, help="chatter messages/s")
    parser.add_argument("--question-rate", type=float, default=3.0, help="questions/s")
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--groups", type=int, default=40, help="Telegram groups (and core "
                        "communities) the members are spread over")
    parser.add_argument("--member-limit", type=int, default=60,
                        help="SHOPKEEP_MEMBER_MESSAGES_PER_MINUTE for the run")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds to wait for the last replies after the load stops")
    parser.add_argument("--transport", choices=("standins", "core"), default="standins")
    parser.add_argument("--reply-mode", choices=("auto", "quote", "generate"), default="auto",
                        help="generate: every answer is written by the model (the worst case)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    print(json.dumps(result) if args.json else _table(result))
    return 0 if result["lost_replies"] == 0 and result["messages_lost_inbound"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
