"""The approval records: which merchant each community serves, kept in step in Redis."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from bot.errors import UserInputError
from bot.storage.keys import (
    Keys,
    community_hinted,
    community_merchant,
    community_request,
    community_requests,
    community_setup_tries,
)

COMMUNITY_KEY = re.compile(r"^(telegram:-?[0-9]{1,20}|discord:[0-9]{1,20})$")
REQUEST_TTL_S = 7 * 86400  # a /setup request nobody approved is forgotten after a week


class CommunityTaken(UserInputError):
    """The community already serves another merchant; only its operator can move it."""


def parse_community(text: str) -> str:
    """`telegram:<chat id>` or `discord:<server id>`, as typed by a person.

    Raises:
        UserInputError: saying what a community key looks like.
    """
    key = text.strip().lower()
    if not COMMUNITY_KEY.match(key):
        raise UserInputError(
            f"{text.strip()!r} is not a community: write telegram:<chat id> (e.g. "
            "telegram:-1001234567890) or discord:<server id> (e.g. discord:123456789012345678).")
    return key


@dataclass(frozen=True)
class Approval:
    """One approved community and how it came to be approved."""

    community: str
    how: str  # setting | code | moderator | cli | existing | migrated | admin
    by: str
    at: float


@dataclass(frozen=True)
class Request:
    """An admin of an unapproved community asked for it to be connected (`/setup`)."""

    community: str
    by: str
    at: float


class Communities:
    """Approve, revoke, list and move communities. The global `community → merchant` key is
    the approval; the merchant's own set and info hash are kept in the same transaction, so
    a reader never sees one without the other."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def owner(self, community_key: str) -> str | None:
        """The merchant `community_key` serves, or None while nobody approved it."""
        owner = await self.redis.get(community_merchant(community_key))
        return str(owner) if owner else None

    async def approve(self, merchant: str, community_key: str, how: str, by: str) -> bool:
        """Approve `community_key` for `merchant`; False when it already was.

        Raises:
            CommunityTaken: it serves another merchant (revoke it there first).
        """
        keys = Keys(merchant)
        owner_key = community_merchant(community_key)

        async def step(pipe: Any) -> bool:
            owner = await pipe.get(owner_key)
            if owner and str(owner) != merchant:
                raise CommunityTaken(f"{community_key} is already connected to another shop; "
                                     "its operator must revoke it there first.")
            pipe.multi()
            pipe.set(owner_key, merchant)
            pipe.sadd(keys.communities(), community_key)
            if not owner:
                info = {"how": how, "by": by, "at": time.time()}
                pipe.hset(keys.community_approvals(), community_key, json.dumps(info))
            pipe.delete(community_request(community_key), community_hinted(community_key),
                        community_setup_tries(community_key))
            pipe.zrem(community_requests(), community_key)
            return not owner

        return await self._transaction(owner_key, step)

    async def revoke(self, merchant: str, community_key: str) -> bool:
        """Stop `community_key` serving `merchant`; False when it did not."""
        keys = Keys(merchant)
        owner_key = community_merchant(community_key)

        async def step(pipe: Any) -> bool:
            owner = await pipe.get(owner_key)
            listed = await pipe.sismember(keys.communities(), community_key)
            pipe.multi()
            if owner and str(owner) == merchant:
                pipe.delete(owner_key)
            pipe.srem(keys.communities(), community_key)
            pipe.hdel(keys.community_approvals(), community_key)
            # Its admins may be told once more how to set it up again.
            pipe.delete(community_hinted(community_key))
            return bool(owner and str(owner) == merchant) or bool(listed)

        return await self._transaction(owner_key, step)

    async def approved(self, merchant: str) -> list[Approval]:
        """The communities `merchant` approved, oldest first."""
        keys = Keys(merchant)
        members = sorted(str(m) for m in await self.redis.smembers(keys.communities()))
        if not members:
            return []
        owners = await self.redis.mget([community_merchant(m) for m in members])
        infos = await self.redis.hmget(keys.community_approvals(), members)
        out = []
        for member, owner, raw in zip(members, owners, infos, strict=True):
            if owner is None or str(owner) != merchant:
                continue  # listed but not approved (data from before approvals existed)
            info = json.loads(raw) if raw else {}
            out.append(Approval(member, str(info.get("how", "")), str(info.get("by", "")),
                                float(info.get("at", 0))))
        return sorted(out, key=lambda a: (a.at, a.community))

    async def approved_keys(self, merchant: str) -> set[str]:
        return {a.community for a in await self.approved(merchant)}

    async def move(self, old_key: str, new_key: str) -> str | None:
        """The community `old_key` now lives at `new_key` (a Telegram group that became a
        supergroup): its approval, pending request and hint follow it in one transaction.
        Returns the merchant it serves, or None when it was not approved."""
        old_owner, new_owner = community_merchant(old_key), community_merchant(new_key)

        async def step(pipe: Any) -> str | None:
            owner = await pipe.get(old_owner)
            already = await pipe.get(new_owner)
            request = await pipe.hgetall(community_request(old_key))
            hinted = await pipe.get(community_hinted(old_key))
            info = await pipe.hget(Keys(str(owner)).community_approvals(), old_key) \
                if owner else None
            pipe.multi()
            if owner and not already:
                keys = Keys(str(owner))
                pipe.set(new_owner, str(owner))
                pipe.delete(old_owner)
                pipe.srem(keys.communities(), old_key)
                pipe.sadd(keys.communities(), new_key)
                pipe.hdel(keys.community_approvals(), old_key)
                moved = json.loads(info) if info else {"how": "migrated", "by": "", "at": 0}
                moved["moved_from"] = old_key
                pipe.hset(keys.community_approvals(), new_key, json.dumps(moved))
            if request and not owner:
                pipe.hset(community_request(new_key), mapping=request)
                pipe.expire(community_request(new_key), REQUEST_TTL_S)
                pipe.zadd(community_requests(), {new_key: float(request.get("at", 0))})
            pipe.delete(community_request(old_key))
            pipe.zrem(community_requests(), old_key)
            if hinted:
                pipe.set(community_hinted(new_key), "1")
            return str(owner) if owner else (str(already) if already else None)

        return await self._transaction(old_owner, step, new_owner)

    # Requests, hints and guesses (communities nobody approved yet) ------------------------

    async def request(self, community_key: str, by: str) -> None:
        """Remember that an admin of `community_key` asked for it to be connected."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(community_request(community_key), mapping={"by": by, "at": str(now)})
            pipe.expire(community_request(community_key), REQUEST_TTL_S)
            pipe.zadd(community_requests(), {community_key: now})
            pipe.zremrangebyscore(community_requests(), 0, now - REQUEST_TTL_S)
            await pipe.execute()

    async def pending(self, community_key: str) -> Request | None:
        raw = await self.redis.hgetall(community_request(community_key))
        if not raw:
            return None
        return Request(community_key, str(raw.get("by", "")), float(raw.get("at", 0)))

    async def requests(self) -> list[Request]:
        """Communities whose admins asked to be connected in the last week, oldest first."""
        cutoff = time.time() - REQUEST_TTL_S
        keys = [str(k) for k in await self.redis.zrangebyscore(community_requests(), cutoff,
                                                                "+inf")]
        out = []
        for key in keys:
            request = await self.pending(key)
            if request is not None:
                out.append(request)
        return out

    async def first_hint(self, community_key: str) -> bool:
        """True exactly once per community: its admins get one hint, not one per message."""
        return bool(await self.redis.set(community_hinted(community_key), "1", nx=True))

    async def note_wrong_code(self, community_key: str, window_s: int = 3600) -> int:
        """Count a wrong setup code typed in `community_key`; returns the count, which is
        forgotten `window_s` after the last wrong try."""
        key = community_setup_tries(community_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_s)
            count, _ = await pipe.execute()
        return int(count)

    async def wrong_codes(self, community_key: str) -> int:
        return int(await self.redis.get(community_setup_tries(community_key)) or 0)

    async def _transaction(self, watched: str, step: Callable[[Any], Awaitable[Any]],
                           *more: str) -> Any:
        """Run `step` under WATCH of the owner key(s), again if another writer got there
        first; `step` reads, calls `pipe.multi()`, queues its writes and returns a result."""
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(watched, *more)
                    result = await step(pipe)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue
