"""Finding and erasing everything stored about one member (`/forgetme`, `/mydata`).

What counts as a member's data, so that other features can take part:
- every key of the merchant whose last segment is the member key, or that continues after it
  (`sk:{merchant}:*:{member_key}` and `sk:{merchant}:*:{member_key}:*`, e.g. the replies'
  memory `sk:m:memory:{member}:{channel}`) is deleted whole;
- entries of the shared logs in `SHARED_LOGS` (the unanswered-question log) that name the
  member are removed, whatever the log's Redis type;
- a feature that keeps the member inside shared records (referrals) defines
  `async forget_member(merchant, member_key, pseudonym)` (or registers such a hook) and
  replaces the member key by the pseudonym there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bot.storage.keys import Keys
from bot.storage.store import Store

log = logging.getLogger(__name__)

EraseHook = Callable[[str, str, str], Awaitable[None]]  # (merchant, member_key, pseudonym)
_GLOB = re.compile(r"([*?\[\]\\])")


def pseudonym(merchant: str, member_key: str) -> str:
    """A stable stand-in for an erased member, so counts still add up in shared records."""
    digest = hashlib.sha256(f"{merchant}\0{member_key}".encode()).hexdigest()[:16]
    return f"forgotten:{digest}"


def shared_logs(keys: Keys) -> list[str]:
    """Keys holding several members' entries, scrubbed entry by entry."""
    return [keys.unanswered()]


def mentions(value: str, member_key: str) -> bool:
    """Whether a stored entry names this member (as a whole id, not a prefix of another)."""
    if value == member_key:
        return True
    pattern = rf"(?<![\w.-]){re.escape(member_key)}(?![\w.-])"
    return re.search(pattern, value) is not None


class Eraser:
    def __init__(self, store: Store, on_forget: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self._hooks: list[EraseHook] = []
        self._on_forget = on_forget

    def register(self, hook: EraseHook) -> None:
        """Called by /forgetme for every member erased: pseudonymise your shared records."""
        self._hooks.append(hook)

    def register_features(self, features: Iterable[object]) -> None:
        for feature in features:
            hook = getattr(feature, "forget_member", None)
            if hook is not None:
                self.register(hook)

    async def member_keys(self, merchant: str, member_key: str) -> list[str]:
        """Every key that belongs to this member alone."""
        keys = self.store.keys(merchant)
        escaped = _GLOB.sub(r"\\\1", member_key)
        found: set[str] = set()
        for pattern in (f"{keys.root}:*:{escaped}", f"{keys.root}:*:{escaped}:*"):
            async for key in self.store.redis.scan_iter(match=pattern, count=1000):
                found.add(str(key))
        return sorted(found)

    async def shared_entries(self, merchant: str, member_key: str) -> dict[str, list[Any]]:
        """The member's entries in shared logs, by log key."""
        out: dict[str, list[Any]] = {}
        for key in shared_logs(self.store.keys(merchant)):
            entries = [raw for _, raw in await self._entries(key) if mentions(raw, member_key)]
            if entries:
                out[key] = [_maybe_json(e) for e in entries]
        return out

    async def erase(self, merchant: str, member_key: str) -> list[str]:
        """Erase the member. Returns the names of hooks that failed (empty when all is done)."""
        if self._on_forget is not None:
            self._on_forget(merchant, member_key)
        keys = self.store.keys(merchant)
        redis = self.store.redis
        owned = await self.member_keys(merchant, member_key)
        pipe = redis.pipeline(transaction=True)
        if owned:
            pipe.delete(*owned)
        pipe.zrem(keys.profile_index(), member_key)
        pipe.zrem(keys.profile_dirty(), member_key)
        pipe.srem(keys.opted_out(), member_key)
        await pipe.execute()
        for key in shared_logs(keys):
            await self._scrub(key, member_key)
        failed: list[str] = []
        alias = pseudonym(merchant, member_key)
        for hook in self._hooks:
            try:
                await hook(merchant, member_key, alias)
            except Exception:
                name = getattr(hook, "__qualname__", repr(hook))
                log.exception("erase hook %s failed for a member of %s", name, merchant)
                failed.append(name)
        return failed

    async def _entries(self, key: str) -> list[tuple[Any, str]]:
        """(handle, text) for each entry of a list, set, sorted set, hash or stream."""
        redis = self.store.redis
        kind = await redis.type(key)
        if kind == "list":
            return [(raw, str(raw)) for raw in await redis.lrange(key, 0, -1)]
        if kind == "set":
            return [(raw, str(raw)) for raw in await redis.smembers(key)]
        if kind == "zset":
            return [(raw, str(raw)) for raw in await redis.zrange(key, 0, -1)]
        if kind == "hash":
            pairs: dict[Any, Any] = await redis.hgetall(key)
            return [(field, f"{field} {value}") for field, value in pairs.items()]
        if kind == "stream":
            entries: Any = await redis.xrange(key)
            return [(sid, json.dumps(fields)) for sid, fields in entries]
        return []

    async def _scrub(self, key: str, member_key: str) -> None:
        redis = self.store.redis
        kind = await redis.type(key)
        doomed = [handle for handle, text in await self._entries(key)
                  if mentions(text, member_key)]
        if not doomed:
            return
        if kind == "list":
            for raw in doomed:
                await redis.lrem(key, 0, raw)
        elif kind == "set":
            await redis.srem(key, *doomed)
        elif kind == "zset":
            await redis.zrem(key, *doomed)
        elif kind == "hash":
            await redis.hdel(key, *doomed)
        elif kind == "stream":
            await redis.xdel(key, *doomed)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text
