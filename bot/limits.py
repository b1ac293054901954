"""Per-member and per-community rate limits and a daily token budget, shared through Redis so
every bot process counts against the same numbers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis

from bot.errors import RateLimited
from bot.storage.keys import Keys

WINDOW_S = 60

# Counts a message against every window only if all are under their limits, so a refused
# message does not use up quota; returns 0 when allowed, else the index (1-based) of the
# first full window. Atomic, hence safe with many processes.
_HIT = """
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[i]) then return i end
end
for i = 1, #KEYS do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[#KEYS + 1]))
end
return 0
"""

# Reserves `estimate` tokens of today's budget if they fit; returns the new total or -1.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 172800)
return total
"""


@dataclass(frozen=True)
class LimitSettings:
    member_per_minute: int
    community_per_minute: int
    community_daily_tokens: int
    member_daily_tokens: int = 20_000  # each member's direct messages, their own budget


class Limits:
    """Rate limits (fixed one-minute windows) and token budgets (per UTC day)."""

    def __init__(self, redis: aioredis.Redis, settings: LimitSettings) -> None:
        self.redis = redis
        self.settings = settings

    async def hit(self, keys: Keys, member_key: str, community_key: str | None,
                  now: float | None = None) -> None:
        """Count one message from `member_key` in `community_key` (None: a direct message).

        Raises:
            RateLimited: with a friendly message when either window is full.
        """
        window = int((now if now is not None else time.time()) // WINDOW_S)
        names = [keys.rate(f"member:{member_key}", window)]
        limits = [self.settings.member_per_minute]
        if community_key is not None:
            names.append(keys.rate(f"community:{community_key}", window))
            limits.append(self.settings.community_per_minute)
        full = int(await self.redis.eval(_HIT, len(names), *names, *limits, WINDOW_S * 2))
        if full == 1:
            raise RateLimited("You're sending questions faster than I can answer — give me "
                              "a minute and ask again.")
        if full == 2:
            raise RateLimited("Lots of questions here right now — I'll be able to answer "
                              "again in a minute.")

    async def reserve_tokens(self, keys: Keys, community_key: str | None, estimate: int,
                             day: str | None = None, member_key: str | None = None) -> str:
        """Take `estimate` tokens from today's budget; returns the budget key to settle later.

        A community's questions share the community's budget; direct messages
        (`community_key` None) draw on the asking member's own budget, so that one busy shop's
        DMs never run dry for everyone at once.

        Raises:
            RateLimited: when the community, or the member in DMs, has used today's budget.
        """
        day = day or today()
        if community_key is not None:
            key, limit = keys.token_budget(community_key, day), self.settings.community_daily_tokens
            refusal = "for this community today"
        else:
            key, limit = _direct_budget(keys, member_key, day), self.settings.member_daily_tokens
            refusal = "for you today"
        total = int(await self.redis.eval(_RESERVE, 1, key, max(0, estimate), limit))
        if total < 0:
            raise RateLimited(f"I've answered as much as I can {refusal} — the team can help "
                              "in the meantime, and I'll be back tomorrow.")
        return key

    async def settle(self, budget_key: str, estimate: int, actual: int) -> None:
        """Correct a reservation with the tokens really used."""
        if actual != estimate:
            await self.redis.incrby(budget_key, actual - estimate)

    async def tokens_used(self, keys: Keys, community_key: str | None,
                          day: str | None = None, member_key: str | None = None) -> int:
        day = day or today()
        key = (keys.token_budget(community_key, day) if community_key is not None
               else _direct_budget(keys, member_key, day))
        return int(await self.redis.get(key) or 0)


def _direct_budget(keys: Keys, member_key: str | None, day: str) -> str:
    if not member_key:
        raise ValueError("a direct message's token budget needs the member")
    return keys.token_budget(f"direct:{member_key}", day)


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")
