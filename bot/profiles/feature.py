"""The profiles feature: observes every message, and offers recommendations, segments and
members' control of their data to commands and to other features."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bot.commands.registry import CommandSpec
from bot.core import Core
from bot.events import Inbound
from bot.profiles.catalog import CatalogCache
from bot.profiles.commands import ProfileCommands
from bot.profiles.erase import EraseHook, Eraser
from bot.profiles.ingest import ProfileWriter
from bot.profiles.model import Profile
from bot.profiles.queue import IngestItem, IngestQueue
from bot.profiles.recommend import Recommendation, Recommender
from bot.profiles.segments import Segment, Segments
from bot.profiles.summary import Maintenance

log = logging.getLogger(__name__)


class ProfilesFeature:
    """Built once by `bot.app.build_features`; other features may build their own instance
    from the same Core for `recommend` / `members_matching` (no background work until
    `start()`)."""

    def __init__(self, core: Core) -> None:
        settings = core.settings
        self.store = core.store
        self.lm = core.lm
        self.catalog = CatalogCache(core.store, core.lm)
        self.writer = ProfileWriter(core.store, self.catalog, settings.profile_retention_days,
                                    settings.profile_summary_every)
        self.queue = IngestQueue(core.store, core.lm.embed, self.writer.write,
                                 maxsize=settings.profile_queue_max,
                                 batch=settings.profile_batch, keep=self.writer.keep)
        self.segments = Segments(core.store)
        self.recommender = Recommender(core.store, core.lm, self.catalog)
        self.eraser = Eraser(core.store, on_forget=self.writer.forget)
        self.maintenance = Maintenance(core.store, core.lm, settings.profile_retention_days,
                                       settings.profile_summary_interval_s)

    # Feature protocol ------------------------------------------------------------------
    def commands(self) -> list[CommandSpec]:
        return ProfileCommands(self).specs()

    async def start(self) -> None:
        await self.queue.start()
        self.maintenance.start()

    async def stop(self) -> None:
        await self.maintenance.stop()
        await self.queue.stop()

    async def observe(self, inbound: Inbound, merchant: str) -> None:
        """Queue the message for its profile; never waits on the model."""
        if not inbound.text.strip():
            return
        community = inbound.community.key if inbound.community else None
        await self.queue.submit(IngestItem(merchant, inbound.member.key, inbound.platform.value,
                                           inbound.text, inbound.sent_at, community))

    # For other features ----------------------------------------------------------------
    async def flush(self, within_s: float = 120.0) -> None:
        """Wait until every observed message is in its profile."""
        await self.queue.flush(within_s)

    async def recommend(self, merchant: str, member_key: str, query: str | None = None,
                        limit: int = 3) -> list[Recommendation]:
        """In-stock products for the member, best first (see `Recommender.recommend`)."""
        person = await self.person(merchant, member_key)
        return await self.recommender.recommend(merchant, person, query, limit)

    async def members_matching(self, merchant: str, expr: str | Segment) -> list[str]:
        return await self.segments.members_matching(merchant, expr)

    async def profile(self, merchant: str, member_key: str) -> Profile | None:
        data = await self.store.redis.hgetall(self.store.keys(merchant).profile(member_key))
        return Profile.from_hash(member_key, data) if data else None

    def register_eraser(self, hook: EraseHook) -> None:
        """`async hook(merchant, member_key, pseudonym)`, run by /forgetme."""
        self.eraser.register(hook)

    def register_features(self, features: Iterable[object]) -> None:
        """Every other feature with `forget_member(merchant, member_key, pseudonym)` joins
        /forgetme; one with `record_interests(merchant, labels, ts)` hears what each message
        was about."""
        others = [f for f in features if f is not self]
        self.eraser.register_features(others)
        for feature in others:
            listener = getattr(feature, "record_interests", None)
            if listener is not None:
                self.writer.interest_listeners.append(listener)

    async def person(self, merchant: str, member_key: str) -> str:
        """The member key whose profile this account uses (another one once accounts are
        linked with growth's /link)."""
        found = await self.store.redis.hget(self.store.keys(merchant).identity(), member_key)
        return str(found) if found else member_key

    async def forget(self, merchant: str, member_key: str) -> list[str]:
        """Erase the account (and the linked person's profile); names of failed hooks."""
        person = await self.person(merchant, member_key)
        failed = await self.eraser.erase(merchant, member_key)
        if person != member_key:
            failed += await self.eraser.erase(merchant, person)
        return failed

    async def is_opted_out(self, merchant: str, member_key: str) -> bool:
        keys = self.store.keys(merchant)
        return bool(await self.store.redis.sismember(keys.opted_out(), member_key))

    async def set_opt_out(self, merchant: str, member_key: str, opted_out: bool) -> None:
        keys = self.store.keys(merchant)
        if opted_out:
            await self.store.redis.sadd(keys.opted_out(), member_key)
        else:
            await self.store.redis.srem(keys.opted_out(), member_key)

    async def export(self, merchant: str, member_key: str) -> dict[str, Any]:
        """Everything stored about one member of one merchant (the /mydata file)."""
        profile = await self.profile(merchant, await self.person(merchant, member_key))
        other: dict[str, Any] = {}
        keys = self.store.keys(merchant)
        for key in await self.eraser.member_keys(merchant, member_key):
            if key == keys.profile(member_key):
                continue
            other[key.removeprefix(keys.root + ":")] = await _dump(self.store, key)
        return {
            "merchant": merchant,
            "member": member_key,
            "learning_switched_off": await self.is_opted_out(merchant, member_key),
            "profile": profile.export() if profile else None,
            "other_records": other,
            "entries_in_shared_logs": {
                k.removeprefix(keys.root + ":"): v
                for k, v in (await self.eraser.shared_entries(merchant, member_key)).items()
            },
        }


async def _dump(store: Any, key: str) -> Any:
    redis = store.redis
    kind = await redis.type(key)
    if kind == "string":
        return await redis.get(key)
    if kind == "hash":
        return await redis.hgetall(key)
    if kind == "list":
        return await redis.lrange(key, 0, -1)
    if kind == "set":
        return sorted(await redis.smembers(key))
    if kind == "zset":
        return await redis.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return [{"id": sid, **fields} for sid, fields in await redis.xrange(key)]
    return None
