"""The last few turns of a member's conversation in one channel, kept in Redis and expiring."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.storage.keys import Keys


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    text: str
    ts: float


class Memory:
    """Per member *and* channel, so one member's context never reaches another's prompt.
    Callers store only redacted text."""

    def __init__(self, redis: aioredis.Redis, turns: int = 3, ttl_s: int = 1800) -> None:
        self.redis = redis
        self.turns = turns
        self.ttl_s = ttl_s

    async def recent(self, keys: Keys, member_key: str, channel_key: str) -> list[Turn]:
        raw = await self.redis.lrange(keys.memory(member_key, channel_key), 0, -1)
        out = []
        for item in raw:
            try:
                data = json.loads(item)
                out.append(Turn(str(data["role"]), str(data["text"]), float(data["ts"])))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged entry costs context, not the answer
        return out

    async def add(self, keys: Keys, member_key: str, channel_key: str, question: str,
                  answer: str) -> None:
        key = keys.memory(member_key, channel_key)
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps({"role": "user", "text": question, "ts": now}),
                       json.dumps({"role": "assistant", "text": answer, "ts": now}))
            pipe.ltrim(key, -2 * self.turns, -1)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def clear(self, keys: Keys, member_key: str, channel_key: str) -> None:
        await self.redis.delete(keys.memory(member_key, channel_key))
