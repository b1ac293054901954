"""Paces a large fan-out under each platform's limits and reports progress as it goes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.events import Platform


@dataclass(frozen=True)
class Limits:
    """At most `per_second` messages overall, and per destination at most `per_destination`
    messages in any `window_s` seconds."""

    per_second: float
    per_destination: int
    window_s: float


# Telegram: ~30 messages/s overall, ~20/min into one group. Discord: 50 requests/s globally,
# and a message route bucket of about 5 per 5 s per channel (a DM is a channel of its own).
PLATFORM_LIMITS: dict[Platform, Limits] = {
    Platform.TELEGRAM: Limits(per_second=25.0, per_destination=20, window_s=60.0),
    Platform.DISCORD: Limits(per_second=40.0, per_destination=5, window_s=5.0),
    Platform.CONSOLE: Limits(per_second=1000.0, per_destination=1000, window_s=1.0),
}


class Pacer:
    """`await pacer.wait(platform, destination)` before each send; it sleeps just long enough.

    `clock` and `sleep` are injectable so the pacing arithmetic is testable without waiting.
    """

    def __init__(self, limits: dict[Platform, Limits] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.limits = limits or PLATFORM_LIMITS
        self._clock = clock
        self._sleep = sleep
        self._next_global: dict[Platform, float] = {}
        self._recent: dict[str, list[float]] = {}
        self.waited_s = 0.0

    async def wait(self, platform: Platform, destination: str) -> None:
        limits = self.limits.get(platform, PLATFORM_LIMITS[Platform.DISCORD])
        now = self._clock()
        ready = max(now, self._next_global.get(platform, now))
        key = f"{platform.value}:{destination}"
        recent = [t for t in self._recent.get(key, []) if t > ready - limits.window_s]
        if len(recent) >= limits.per_destination:
            ready = max(ready, recent[-limits.per_destination] + limits.window_s)
        delay = ready - now
        if delay > 0:
            self.waited_s += delay
            await self._sleep(delay)
        sent_at = max(ready, self._clock())
        self._next_global[platform] = sent_at + 1.0 / limits.per_second
        recent = [t for t in recent if t > sent_at - limits.window_s]
        recent.append(sent_at)
        self._recent[key] = recent


class Progress:
    """Counts a run's deliveries and calls `report` every `every` deliveries and at the end."""

    def __init__(self, total: int, report: Callable[[int, int, int], Awaitable[None]],
                 every: int = 25) -> None:
        self.total = total
        self.sent = 0
        self.failed = 0
        self.skipped = 0
        self.uncertain = 0  # may or may not have reached the target: never counted as sent
        self._report = report
        self._every = max(1, every)

    async def add(self, status: str) -> None:
        if status == "sent":
            self.sent += 1
        elif status == "failed":
            self.failed += 1
        elif status == "uncertain":
            self.uncertain += 1
        else:
            self.skipped += 1
        done = self.sent + self.failed + self.skipped + self.uncertain
        if done % self._every == 0 or done == self.total:
            await self._report(self.sent, self.failed, self.total)
