"""Referrals: personal invite codes, attribution on join, the stay rule, leaderboards, CSV.

A referral moves `pending` → `credited` once the invitee has stayed `stay_days` and written
`min_messages` messages, or `pending` → `withdrawn` when they leave before that. Every move
is one Lua script, so two processes settling the same invitee credit it once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from bot.errors import UserInputError
from bot.growth.analytics import RETENTION_S
from bot.growth.periods import DAY_S, Calendar
from bot.storage.keys import Keys

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: codes get typed by hand
CODE_LENGTH = 8

_ATTRIBUTE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'invitee', ARGV[1], 'referrer', ARGV[2], 'code', ARGV[3],
           'joined_at', ARGV[4], 'messages', 0, 'status', 'pending')
if tonumber(ARGV[5]) == 0 then redis.call('HSET', KEYS[1], 'qualified_at', ARGV[4]) end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], ARGV[6], 1)
redis.call('EXPIRE', KEYS[4], ARGV[7])
return 1
"""
_MESSAGE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return -1 end
local n = redis.call('HINCRBY', KEYS[1], 'messages', 1)
if n == tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'qualified_at', ARGV[2]) end
return n
"""
_MOVE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[4])
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
redis.call('EXPIRE', KEYS[3], ARGV[6])
if ARGV[1] == 'credited' then
  redis.call('ZINCRBY', KEYS[4], 1, ARGV[7])
  redis.call('ZINCRBY', KEYS[5], 1, ARGV[7])
end
return 1
"""

Canonical = Callable[[str, str], Awaitable[str]]


@dataclass(frozen=True)
class JoinOutcome:
    """What `member_joined` decided: `attributed`, or why not."""

    status: str  # attributed | no_code | unknown_code | self | already_member | already_attributed
    referrer: str | None = None

    @property
    def attributed(self) -> bool:
        return self.status == "attributed"


def parse_start_payload(payload: str | None) -> str | None:
    """The referral code in a `/start` payload (`ref_abc123`), or None."""
    text = (payload or "").strip().lower()
    return text.removeprefix("ref_") if text.startswith("ref_") and len(text) > 4 else None


def invite_id(link: str) -> str:
    """How an invite is known in attribution: the last part of its link (`discord.gg/<code>`,
    `t.me/+<hash>`), or the text itself when it is not a link."""
    return link.strip().rstrip("/").rsplit("/", 1)[-1]


def attribute_invite_uses(before: dict[str, int], after: dict[str, int]) -> str | None:
    """Discord attribution (best effort): the one invite whose use count went up by one.

    Discord does not say which invite a member used; comparing use counts before and after a
    join works only when joins do not overlap, so two invites moving at once give None.
    """
    moved = [code for code, uses in after.items() if uses == before.get(code, 0) + 1]
    grew = [code for code, uses in after.items() if uses > before.get(code, 0)]
    return moved[0] if len(moved) == 1 and len(grew) == 1 else None


class Referrals:
    def __init__(self, redis: aioredis.Redis, calendar: Calendar, canonical: Canonical,
                 stay_days: float, min_messages: int) -> None:
        self.redis = redis
        self.calendar = calendar
        self.canonical = canonical
        self.stay_s = stay_days * DAY_S
        self.min_messages = min_messages
        self._attribute = redis.register_script(_ATTRIBUTE)
        self._message = redis.register_script(_MESSAGE)
        self._move = redis.register_script(_MOVE)

    async def code_for(self, merchant: str, member_key: str, display_name: str = "") -> str:
        """The member's personal referral code, made on first use and the same afterwards."""
        keys = Keys(merchant)
        if display_name:
            await self.redis.hset(keys.stats_labels(), f"member:{member_key}", display_name)
        existing = await self.redis.hget(keys.referral_code_of(), member_key)
        if existing:
            return str(existing)
        while True:
            code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
            if await self.redis.hsetnx(keys.referral_codes(), code, member_key):
                break
        if await self.redis.hsetnx(keys.referral_code_of(), member_key, code):
            return code
        # Another process gave this member a code at the same moment: keep theirs.
        await self.redis.hdel(keys.referral_codes(), code)
        return str(await self.redis.hget(keys.referral_code_of(), member_key))

    async def member_joined(self, merchant: str, member_key: str, code: str | None,
                            ts: float) -> JoinOutcome:
        """Attribute a join to the owner of `code`, unless a fraud check says no."""
        keys = Keys(merchant)
        if not code:
            return JoinOutcome("no_code")
        referrer = await self.redis.hget(keys.referral_codes(), code.strip().lower())
        if referrer is None:
            return JoinOutcome("unknown_code")
        referrer = str(referrer)
        if await self.canonical(merchant, referrer) == await self.canonical(merchant, member_key):
            return JoinOutcome("self", referrer)
        if await self.redis.exists(keys.referral(member_key)):
            return JoinOutcome("already_attributed", referrer)
        first_seen = await self.redis.hget(keys.first_seen(), member_key)
        if first_seen is not None and float(first_seen) < ts:
            return JoinOutcome("already_member", referrer)
        platform = member_key.partition(":")[0]
        added = await self._attribute(
            keys=[keys.referral(member_key), keys.referral_invitees(), keys.referral_pending(),
                  keys.stats_counts(self.calendar.day(ts))],
            args=[member_key, referrer, code.strip().lower(), repr(ts), self.min_messages,
                  f"ref_joined:{platform}", RETENTION_S],
        )
        if not added:
            return JoinOutcome("already_attributed", referrer)
        return JoinOutcome("attributed", referrer)

    async def register_invite(self, merchant: str, platform: str, invite_code: str,
                              member_key: str) -> str:
        """Remember that a platform invite (one the Discord adapter made for a member) stands
        for that member's referral code. Returns the referral code."""
        code = await self.code_for(merchant, member_key)
        await self.redis.hset(Keys(merchant).referral_invites(), f"{platform}:{invite_code}",
                              code)
        return code

    async def code_for_invite(self, merchant: str, platform: str,
                              invite_code: str | None) -> str | None:
        """The referral code behind a registered platform invite, or None."""
        if not invite_code:
            return None
        found = await self.redis.hget(Keys(merchant).referral_invites(),
                                      f"{platform}:{invite_code}")
        return str(found) if found else None

    async def note_message(self, merchant: str, member_key: str, ts: float) -> None:
        """Count an invitee's message toward the rule, then credit them if it is met."""
        keys = Keys(merchant)
        if not await self.redis.sismember(keys.referral_pending(), member_key):
            return
        await self._message(keys=[keys.referral(member_key)],
                            args=[self.min_messages, repr(ts)])
        await self._settle_one(keys, member_key, ts)

    async def member_left(self, merchant: str, member_key: str, ts: float) -> str | None:
        """Withdraw a pending referral when the invitee leaves before meeting the rule.

        Returns the referral's status afterwards, or None when the member was not referred.
        """
        keys = Keys(merchant)
        await self._settle_one(keys, member_key, ts)
        record = await self.redis.hgetall(keys.referral(member_key))
        if not record:
            return None
        if record.get("status") == "pending":
            platform = member_key.partition(":")[0]
            await self._move(
                keys=[keys.referral(member_key), keys.referral_pending(),
                      keys.stats_counts(self.calendar.day(ts)), keys.referral_board("all"),
                      keys.referral_board(self.calendar.month(ts))],
                args=["withdrawn", "left_at", repr(ts), member_key,
                      f"ref_withdrawn:{platform}", RETENTION_S, ""],
            )
        return str(await self.redis.hget(keys.referral(member_key), "status"))

    async def settle(self, merchant: str, now: float) -> int:
        """Credit every pending referral whose invitee has met the rule by `now`."""
        keys = Keys(merchant)
        credited = 0
        for invitee in await self.redis.smembers(keys.referral_pending()):
            credited += await self._settle_one(keys, str(invitee), now)
        return credited

    async def _settle_one(self, keys: Keys, invitee: str, now: float) -> int:
        record = await self.redis.hgetall(keys.referral(invitee))
        if record.get("status") != "pending" or "qualified_at" not in record:
            return 0
        # Credited at the moment the rule was met, whenever we notice, so figures are exact.
        at = max(float(record["joined_at"]) + self.stay_s, float(record["qualified_at"]))
        if at > now:
            return 0
        platform = invitee.partition(":")[0]
        # Boards count persons: a referrer who linked accounts gets one line.
        referrer = await self.canonical(keys.merchant, str(record["referrer"]))
        return int(await self._move(
            keys=[keys.referral(invitee), keys.referral_pending(),
                  keys.stats_counts(self.calendar.day(at)), keys.referral_board("all"),
                  keys.referral_board(self.calendar.month(at))],
            args=["credited", "credited_at", repr(at), invitee, f"ref_credited:{platform}",
                  RETENTION_S, referrer],
        ))

    async def leaderboard(self, merchant: str, now: float, period: str = "month",
                          top: int = 10) -> list[tuple[str, str, int]]:
        """Top referrers as (member key, display name, credited referrals)."""
        keys = Keys(merchant)
        await self.settle(merchant, now)
        board = keys.referral_board("all" if period == "all" else self.calendar.month(now))
        rows = cast(list[tuple[str, float]],
                    await self.redis.zrevrange(board, 0, top - 1, withscores=True))
        names = await self.redis.hgetall(keys.stats_labels())
        return [(str(m), str(names.get(f"member:{m}", m)), int(s)) for m, s in rows]

    async def merge_referrer(self, merchant: str, person: str, other: str) -> None:
        """After linking: `other`'s credited referrals count for `person` on every board."""
        keys = Keys(merchant)
        async for board in self.redis.scan_iter(match=keys.referral_board("*"), count=500):
            score = await self.redis.zscore(board, other)
            if score is not None:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.zincrby(board, score, person)
                    pipe.zrem(board, other)
                    await pipe.execute()

    async def records(self, merchant: str) -> list[dict[str, str]]:
        keys = Keys(merchant)
        out = []
        for invitee in sorted(await self.redis.smembers(keys.referral_invitees())):
            record = await self.redis.hgetall(keys.referral(str(invitee)))
            if record:
                out.append({str(k): str(v) for k, v in record.items()})
        return sorted(out, key=lambda r: float(r["joined_at"]))

    async def export_csv(self, merchant: str, now: float) -> str:
        """Every attributed join, one row each, for moderators to audit or reward."""
        await self.settle(merchant, now)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["invitee", "referrer", "code", "joined_at", "messages", "status",
                         "credited_at", "left_at"])
        for r in await self.records(merchant):
            writer.writerow([r["invitee"], r["referrer"], r["code"], _iso(r.get("joined_at")),
                             r.get("messages", "0"), r["status"], _iso(r.get("credited_at")),
                             _iso(r.get("left_at"))])
        return buffer.getvalue()


def _iso(ts: str | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).isoformat(timespec="seconds")


def invite_text(platform: str, code: str, telegram_bot: str | None,
                discord_invite: str | None) -> str:
    """The message `/invite` answers with: a personal link where the platform allows one."""
    claim = f"/start ref_{code}"
    if platform == "telegram" and telegram_bot:
        link = f"https://t.me/{telegram_bot.lstrip('@')}?start=ref_{code}"
        return (f"Your personal invite link: {link}\nFriends who open it are counted as "
                "yours once they have stayed a while and joined the conversation.")
    if platform == "discord" and discord_invite:
        return (f"Invite friends with https://discord.gg/{discord_invite} and ask them to type "
                f"`{claim}` once they are in, so they are counted as yours.")
    if platform in ("telegram", "discord"):
        return (f"Your referral code is {code}. Friends who join should type `{claim}` so they "
                "are counted as yours.")
    raise UserInputError("Invites work on Discord and Telegram; run /invite there.")
