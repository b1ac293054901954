"""The dashboard's audit log: every change a moderator makes there — who, what, when."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from bot.profiles.erase import mentions
from bot.storage.keys import Keys

KEEP = 10_000  # entries per merchant; the oldest fall off
PASSES = 5


@dataclass(frozen=True)
class AuditEntry:
    at: float
    member: str  # the moderator's member key
    name: str
    action: str  # e.g. "faq.edit"
    detail: str

    def as_json(self) -> str:
        return json.dumps({"at": self.at, "member": self.member, "name": self.name,
                           "action": self.action, "detail": self.detail}, ensure_ascii=False)


class AuditLog:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def record(self, merchant: str, member: str, name: str, action: str,
                     detail: str = "", at: float | None = None) -> AuditEntry:
        entry = AuditEntry(time.time() if at is None else at, member, name, action,
                           detail[:500])
        key = Keys(merchant).dashboard_audit()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, entry.as_json())
            pipe.ltrim(key, 0, KEEP - 1)
            await pipe.execute()
        return entry

    async def latest(self, merchant: str, count: int = 200, start: int = 0) -> list[AuditEntry]:
        raw = await self.redis.lrange(Keys(merchant).dashboard_audit(), start,
                                      start + count - 1)
        entries = []
        for item in raw:
            data = json.loads(str(item))
            entries.append(AuditEntry(float(data["at"]), str(data["member"]), str(data["name"]),
                                      str(data["action"]), str(data.get("detail", ""))))
        return entries

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        """/forgetme (and an erase from the dashboard): the log keeps what was done, with a
        pseudonym where the member was named (as the acting moderator or in the detail).

        Entries are rewritten in place by index; one pushed meanwhile shifts the indexes, so
        each rewrite checks the old value under WATCH and a pass that missed any is repeated.
        """
        key = Keys(merchant).dashboard_audit()
        for _ in range(PASSES):
            raw = [str(item) for item in await self.redis.lrange(key, 0, -1)]
            missed = False
            for index, text in enumerate(raw):
                if mentions(text, member_key):
                    fixed = _pseudonymised(text, member_key, pseudonym)
                    missed |= not await self._replace(key, index, text, fixed)
            if not missed:
                return

    async def _replace(self, key: str, index: int, old: str, new: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.lindex(key, index) != old:
                    return False
                pipe.multi()
                pipe.lset(key, index, new)
                await pipe.execute()
                return True
            except WatchError:
                return False


def _pseudonymised(text: str, member_key: str, pseudonym: str) -> str:
    data = json.loads(text)
    if data.get("member") == member_key:
        data["member"], data["name"] = pseudonym, "(erased member)"
    data["detail"] = str(data.get("detail", "")).replace(member_key, pseudonym)
    return json.dumps(data, ensure_ascii=False)
