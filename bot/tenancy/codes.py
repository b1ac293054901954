"""One-time setup codes: printed for a merchant, typed once in a new community, then gone."""

from __future__ import annotations

import re
import secrets

import redis.asyncio as aioredis

from bot.storage.keys import setup_code, validate_merchant_id

# No 0/O, 1/I/L: a code is read off one screen and typed on another.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS, GROUP_LEN = 3, 4  # 12 characters from 31: about 59 bits
DEFAULT_TTL_S = 30 * 60
MAX_TTL_S = 7 * 86400
_SHAPE = re.compile(rf"^[{ALPHABET}]{{{GROUPS * GROUP_LEN}}}$")


def normalise(code: str) -> str:
    """What a person typed, without dashes, spaces or case: `k7qm-2xpd 9hrt` → `K7QM2XPD9HRT`."""
    return re.sub(r"[\s\-]", "", code).upper()


def looks_like_code(code: str) -> bool:
    return bool(_SHAPE.match(normalise(code)))


def pretty(code: str) -> str:
    return "-".join(code[i:i + GROUP_LEN] for i in range(0, len(code), GROUP_LEN))


class SetupCodes:
    """Codes are stored only by value with an expiry; redeeming one deletes it in the same
    command (GETDEL), so two communities racing for one code cannot both win."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def create(self, merchant: str, ttl_s: int = DEFAULT_TTL_S) -> str:
        """A new code bound to `merchant`, valid for `ttl_s` seconds; returned as XXXX-XXXX-XXXX.

        Raises:
            ValueError: an invalid merchant id or lifetime.
        """
        validate_merchant_id(merchant)
        if not 60 <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"a setup code lives between 1 minute and {MAX_TTL_S // 86400} "
                             "days")
        while True:
            code = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LEN))
            if await self.redis.set(setup_code(code), merchant, ex=ttl_s, nx=True):
                return pretty(code)

    async def redeem(self, typed: str) -> str | None:
        """The merchant the code was made for, or None (wrong, used or expired). The code is
        used up either way."""
        code = normalise(typed)
        if not _SHAPE.match(code):
            return None
        merchant = await self.redis.getdel(setup_code(code))
        return str(merchant) if merchant else None
