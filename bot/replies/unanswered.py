"""The log of questions the bot could not answer, for moderators (and gap analysis later)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bot.storage.keys import Keys

KEEP = 1000


@dataclass(frozen=True)
class Unanswered:
    question: str
    member: str
    ts: float
    community: str | None


class UnansweredLog:
    """A Redis list of JSON `{question, member, ts, community}`, newest first, bounded."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def add(self, keys: Keys, question: str, member: str, community: str | None) -> None:
        item = {"question": question, "member": member, "ts": time.time(),
                "community": community}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.unanswered(), json.dumps(item, ensure_ascii=False))
            pipe.ltrim(keys.unanswered(), 0, KEEP - 1)
            await pipe.execute()

    async def latest(self, keys: Keys, count: int = 10) -> list[Unanswered]:
        out = []
        for raw in await self.redis.lrange(keys.unanswered(), 0, count - 1):
            data: dict[str, Any] = json.loads(raw)
            out.append(Unanswered(str(data["question"]), str(data["member"]),
                                  float(data["ts"]), data.get("community")))
        return out
