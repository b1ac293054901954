"""Flood control shared through Redis, so several bot processes together stay under Telegram's
limits (~30 messages/s overall, ~20/min per group), wrapped around PTB's `AIORateLimiter`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from telegram.error import RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from adapters.telegram.journal import IN_FLIGHT, QUEUED, WIRE, refused
from bot.ops.metrics import record_rate_limit_wait
from bot.storage.keys import telegram as tg_key
from bot.storage.store import CONNECTION_ERRORS

log = logging.getLogger(__name__)

JSON = bool | dict[str, Any] | list[dict[str, Any]]

# Methods that post or change a message count against the limits; reads and chat actions
# do not (Telegram does not count them, and throttling "typing…" would only delay it).
_LIMITED_PREFIXES = ("send", "edit", "copy", "forward")
_UNLIMITED = {"sendChatAction"}

# One sliding window per scope: drop entries older than the window, refuse when full (and
# say how long until the oldest entry leaves), otherwise record this send in every window.
# Time comes from Redis so processes on different machines share one clock.
_ACQUIRE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local pause = redis.call('PTTL', KEYS[1])
if pause > 0 then return pause end
local wait = 0
for i = 2, #KEYS do
  local limit = tonumber(ARGV[(i - 2) * 2 + 1])
  local window = tonumber(ARGV[(i - 2) * 2 + 2])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', t - window)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - t
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
local member = ARGV[#ARGV]
for i = 2, #KEYS do
  local window = tonumber(ARGV[(i - 2) * 2 + 2])
  redis.call('ZADD', KEYS[i], t, member)
  redis.call('PEXPIRE', KEYS[i], window)
end
return 0
"""

# When a send has finished, its entries move to Redis's clock now: Telegram counted the
# message when it arrived, somewhere between our slot and the answer, so dating the slot
# at the answer keeps our windows at least as long as Telegram's however slow the request
# was on the way (a loaded event loop, a slow network) — the margin alone covers only jitter.
_SETTLE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    redis.call('ZADD', KEYS[i], t, ARGV[1])
    redis.call('PEXPIRE', KEYS[i], ARGV[i + 1])
  end
end
return 0
"""


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's published limits by default; tests shrink the periods to keep them fast."""

    overall_rate: int = 30
    overall_period_s: float = 1.0
    group_rate: int = 20
    group_period_s: float = 60.0
    max_retries: int = 12  # RetryAfter answers honoured before a send gives up
    # Our clock starts a window when a slot is taken, Telegram's when the request arrives;
    # stretching our windows a little keeps network jitter from crossing the line.
    margin: float = 0.05


@dataclass(frozen=True)
class _Slot:
    keys: list[str]  # the windows this send was counted in
    member: str
    windows: list[int]  # their lengths, ms


class RedisFloodLimiter(BaseRateLimiter[int]):
    """A PTB rate limiter: first a slot in the shared Redis windows (overall and per group),
    then PTB's `AIORateLimiter` for local smoothing and `RetryAfter` retries. A 429 also
    pauses every process for the time Telegram asked, through a shared key."""

    def __init__(self, redis: aioredis.Redis, bot_id: str,
                 limits: FloodLimits | None = None) -> None:
        self.redis = redis
        self.bot_id = bot_id
        self.limits = limits or FloodLimits()
        self._local = AIORateLimiter(
            overall_max_rate=self.limits.overall_rate,
            overall_time_period=self.limits.overall_period_s,
            group_max_rate=self.limits.group_rate,
            group_time_period=self.limits.group_period_s,
            max_retries=self.limits.max_retries,
        )
        self._script = redis.register_script(_ACQUIRE)
        self._settle = redis.register_script(_SETTLE)
        self.waited_s = 0.0  # total time spent waiting for a slot (for benchmarks and logs)
        self.retry_afters = 0

    async def initialize(self) -> None:
        await self._local.initialize()

    async def shutdown(self) -> None:
        await self._local.shutdown()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSON:
        chat_id = data.get("chat_id")
        limited = (chat_id is not None and endpoint.startswith(_LIMITED_PREFIXES)
                   and endpoint not in _UNLIMITED)
        # An idempotent send: nothing is on the wire while it waits for a slot, so a process
        # killed during the wait leaves it provably unposted.
        flight = IN_FLIGHT.get() if limited else None
        if flight is not None:
            await flight.mark(QUEUED)

        async def shared_callback(*c_args: Any, **c_kwargs: Any) -> JSON:
            slot: _Slot | None = None
            if limited:
                try:
                    slot = await self.acquire(str(chat_id))
                except CONNECTION_ERRORS:
                    # Redis is down: this process's own limiter still applies; a message
                    # is worth more than strict sharing.
                    log.warning("flood windows unreachable; limiting this process only")
            if flight is not None:
                await flight.mark(WIRE)  # before the request leaves, or it is not sent
            try:
                return await callback(*c_args, **c_kwargs)
            except TelegramError as exc:
                if flight is not None and refused(exc):
                    with contextlib.suppress(*CONNECTION_ERRORS):
                        await flight.mark(QUEUED)
                if isinstance(exc, RetryAfter):
                    self.retry_afters += 1
                    with contextlib.suppress(*CONNECTION_ERRORS):
                        await self._pause_everyone(exc)
                raise
            finally:
                if slot is not None:
                    with contextlib.suppress(*CONNECTION_ERRORS):
                        await self._settle(keys=slot.keys, args=[slot.member, *slot.windows])

        return await self._local.process_request(
            shared_callback, args, kwargs, endpoint, data, rate_limit_args
        )

    async def acquire(self, chat_id: str) -> _Slot:
        """Wait until one more message to `chat_id` fits every shared window; returns the
        slot taken (to be dated again when the send has finished)."""
        keys = [tg_key(self.bot_id, "flood:pause"), tg_key(self.bot_id, "flood:all")]
        stretch = 1000 * (1 + self.limits.margin)
        windows = [int(self.limits.overall_period_s * stretch)]
        argv: list[Any] = [self.limits.overall_rate, windows[0]]
        if _is_group(chat_id):
            keys.append(tg_key(self.bot_id, f"flood:chat:{chat_id}"))
            windows.append(int(self.limits.group_period_s * stretch))
            argv += [self.limits.group_rate, windows[-1]]
        member = uuid.uuid4().hex
        argv.append(member)
        while True:
            wait_ms = int(await self._script(keys=keys, args=argv))
            if wait_ms <= 0:
                return _Slot(keys[1:], member, windows)
            self.waited_s += wait_ms / 1000
            record_rate_limit_wait("telegram", wait_ms / 1000)
            await asyncio.sleep(wait_ms / 1000)

    async def _pause_everyone(self, exc: RetryAfter) -> None:
        with warnings.catch_warnings():  # PTB 22 warns that the type will become timedelta
            warnings.simplefilter("ignore", PTBDeprecationWarning)
            retry_after = exc.retry_after
        seconds = (retry_after.total_seconds() if isinstance(retry_after, dt.timedelta)
                   else float(retry_after))
        log.info("Telegram asked to retry after %.1f s; pausing every sender", seconds)
        record_rate_limit_wait("telegram", seconds)
        await self.redis.set(tg_key(self.bot_id, "flood:pause"), "1",
                             px=max(int(seconds * 1000), 1))


def _is_group(chat_id: str) -> bool:
    """Groups and supergroups have negative ids (channels use @names); private chats are
    positive and only the overall limit applies to them."""
    return chat_id.startswith(("-", "@"))
