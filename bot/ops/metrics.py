"""Every Prometheus metric Shopkeep exports, defined once, and the meter the router uses."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from bot.events import Inbound, Outbound
from bot.logs import correlation_id

log = logging.getLogger(__name__)

# Seconds: a member notices past 2 s; the goal is p95 <= 5 s; the LM timeout is 30 s.
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The metric families, registered on their own registry (not prometheus' global one) so
    that importing Shopkeep in another program adds nothing to that program's /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self.registry = reg
        ProcessCollector(registry=reg)  # process_resident_memory_bytes, cpu, open fds
        PlatformCollector(registry=reg)
        self.messages_in = Counter(
            "shopkeep_messages_in", "Member messages received.", ["platform", "kind"],
            registry=reg)
        self.messages_out = Counter(
            "shopkeep_messages_out", "Messages the bot produced (replies, campaign posts, DMs).",
            ["platform", "source"], registry=reg)
        self.replies = Counter(
            "shopkeep_replies", "Handled messages by outcome (ok, silent, user_error, "
            "storage_down, lm_busy, lm_timeout, lm_unavailable, error).",
            ["platform", "outcome"], registry=reg)
        self.reply_latency = Histogram(
            "shopkeep_reply_latency_seconds", "Time from receiving a message to its replies.",
            ["platform", "kind"], buckets=LATENCY_BUCKETS, registry=reg)
        self.inflight = Gauge(
            "shopkeep_messages_inflight", "Messages being handled right now.", registry=reg)
        self.lm_queue_depth = Gauge(
            "shopkeep_lm_queue_depth", "LM requests waiting or running (this process's view, "
            "or the engine's own queue when it reports one).", registry=reg)
        self.lm_requests = Counter(
            "shopkeep_lm_requests", "LM calls by kind (generate, embed) and outcome.",
            ["kind", "outcome"], registry=reg)
        self.lm_latency = Histogram(
            "shopkeep_lm_latency_seconds", "LM call latency.", ["kind"],
            buckets=LATENCY_BUCKETS, registry=reg)
        self.lm_tokens = Counter(
            "shopkeep_lm_tokens", "Tokens processed; rate() of direction=completion is the "
            "generation tokens/s.", ["direction"], registry=reg)
        self.lm_batch_size = Histogram(
            "shopkeep_lm_batch_size", "Per answer, the most requests the engine decoded "
            "together with it (a measure of how well batching works).",
            buckets=BATCH_BUCKETS, registry=reg)
        self.redis_errors = Counter(
            "shopkeep_redis_errors", "Redis calls that failed after retries.", ["where"],
            registry=reg)
        self.campaign_runs = Counter(
            "shopkeep_campaign_runs", "Campaign runs by outcome (posted, skipped_locked, "
            "failed...).", ["outcome"], registry=reg)
        self.rate_limit_waits = Counter(
            "shopkeep_rate_limit_waits", "Times a send waited for a platform or own rate limit.",
            ["platform"], registry=reg)
        self.rate_limit_wait_seconds = Counter(
            "shopkeep_rate_limit_wait_seconds", "Seconds spent waiting on rate limits.",
            ["platform"], registry=reg)
        self.ready = Gauge(
            "shopkeep_ready", "1 when /readyz answers ready.", registry=reg)
        self.loop_lag = Histogram(
            "shopkeep_event_loop_lag_seconds", "How late the event loop ran a timer: work "
            "blocking the loop delays every member's message.", buckets=LATENCY_BUCKETS,
            registry=reg)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return bytes(generate_latest(self.registry))


METRICS = Metrics()
"""The process's metrics. Prometheus metrics are process-wide by nature (one /metrics per
process), so features and adapters record into this one object through the helpers below."""


def record_sent(platform: str, source: str = "post", count: int = 1) -> None:
    """An adapter or the outbox delivered `count` messages that were not replies."""
    METRICS.messages_out.labels(platform=platform, source=source).inc(count)


def record_campaign_run(outcome: str) -> None:
    """One campaign run ended: posted, skipped_locked, no_audience, failed..."""
    METRICS.campaign_runs.labels(outcome=outcome).inc()


def record_rate_limit_wait(platform: str, seconds: float) -> None:
    """A send waited `seconds` for a rate limit (a platform's 429 or our own flood limit)."""
    METRICS.rate_limit_waits.labels(platform=platform).inc()
    METRICS.rate_limit_wait_seconds.labels(platform=platform).inc(max(seconds, 0.0))


async def watch_event_loop(interval_s: float = 0.5, metrics: Metrics = METRICS) -> None:
    """Record, forever, how much later than asked the loop wakes this task up."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(interval_s)
        metrics.loop_lag.observe(max(0.0, loop.time() - asked - interval_s))


def record_redis_error(where: str) -> None:
    METRICS.redis_errors.labels(where=where).inc()


def message_kind(inbound: Inbound) -> str:
    return "command" if inbound.command is not None or inbound.text.lstrip().startswith(
        "/") else "message"


@dataclass
class _Handling:
    inbound: Inbound
    kind: str
    started: float = field(default_factory=time.perf_counter)
    outcome: str | None = None


_current: contextvars.ContextVar[_Handling | None] = contextvars.ContextVar(
    "shopkeep_handling", default=None)


class MessageMeter:
    """Counts, times and correlates each message the router handles, and knows how many are
    still in flight so that a graceful stop can wait for them."""

    def __init__(self, metrics: Metrics = METRICS) -> None:
        self.metrics = metrics
        self.inflight = 0
        self._idle: asyncio.Event | None = None

    @contextmanager
    def track(self, inbound: Inbound) -> Iterator[_Handling]:
        """Wrap one `Router.handle`: sets the log correlation id, counts in and out."""
        handling = _Handling(inbound, message_kind(inbound))
        platform = inbound.platform.value
        self.metrics.messages_in.labels(platform=platform, kind=handling.kind).inc()
        cid_token = correlation_id.set(uuid.uuid4().hex[:12])
        handling_token = _current.set(handling)
        self._enter()
        log.debug("%s %s from %s (message %s)", platform, handling.kind,
                  inbound.member.key, inbound.message_id)
        try:
            yield handling
        finally:
            self._leave()
            seconds = time.perf_counter() - handling.started
            self.metrics.reply_latency.labels(platform=platform, kind=handling.kind).observe(
                seconds)
            self.metrics.replies.labels(platform=platform,
                                        outcome=handling.outcome or "error").inc()
            _current.reset(handling_token)
            correlation_id.reset(cid_token)

    def replied(self, handling: _Handling, replies: list[Outbound]) -> None:
        platform = handling.inbound.platform.value
        if replies:
            self.metrics.messages_out.labels(platform=platform, source="reply").inc(len(replies))
        if handling.outcome is None:
            handling.outcome = "ok" if replies else "silent"

    @staticmethod
    def note(outcome: str) -> None:
        """Record why the message being handled ended as it did (called from except blocks)."""
        handling = _current.get()
        if handling is not None and handling.outcome is None:
            handling.outcome = outcome
        if outcome == "storage_down":
            record_redis_error("router")

    async def wait_idle(self) -> None:
        """Return when no message is being handled."""
        while self.inflight:
            await self._event().wait()

    def _event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            if not self.inflight:
                self._idle.set()
        return self._idle

    def _enter(self) -> None:
        self.inflight += 1
        self.metrics.inflight.inc()
        self._event().clear()

    def _leave(self) -> None:
        self.inflight -= 1
        self.metrics.inflight.dec()
        if not self.inflight:
            self._event().set()
