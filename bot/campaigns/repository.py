"""Campaigns, runs and delivery records in Redis: the only module that knows their keys."""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from bot.campaigns.models import Campaign, Delivery
from bot.errors import UserInputError
from bot.events import CommunityRef
from bot.storage.keys import Keys
from bot.storage.store import Store
from bot.tenancy import places

HISTORY_KEEP = 200  # runs remembered per campaign
QUESTIONS_KEEP = 200

# Reserve a DM slot for one member atomically: several runs (and processes) race for the cap.
# A run that already holds a slot keeps it (a resumed run is not charged twice).
_RESERVE_DM = """
local now = tonumber(ARGV[2])
redis.call('zremrangebyscore', KEYS[1], '-inf', now - tonumber(ARGV[3]))
if redis.call('zscore', KEYS[1], ARGV[1]) then return 1 end
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('zadd', KEYS[1], now, ARGV[1])
redis.call('expire', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class CampaignRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def redis(self) -> aioredis.Redis:
        return self.store.redis  # resolved per call: the store connects after features are built

    # Campaigns -------------------------------------------------------------------------
    async def create(self, campaign: Campaign) -> None:
        keys = Keys(campaign.merchant)
        added = await self.redis.sadd(keys.campaign_names(), campaign.name)
        if not added:
            raise UserInputError(f"A campaign called {campaign.name!r} already exists; pick "
                                 "another name or /campaign delete it first.")
        await self.redis.hset(keys.campaign(campaign.name), mapping=_m(campaign.to_hash()))

    async def save(self, campaign: Campaign) -> None:
        keys = Keys(campaign.merchant)
        await self.redis.hset(keys.campaign(campaign.name), mapping=_m(campaign.to_hash()))

    async def update(self, merchant: str, name: str, **fields: Any) -> None:
        """Write a few fields without rewriting the rest (two processes may edit at once)."""
        values = {k: ("1" if v else "0") if isinstance(v, bool) else str(v)
                  for k, v in fields.items()}
        await self.redis.hset(Keys(merchant).campaign(name), mapping=_m(values))

    async def get(self, merchant: str, name: str) -> Campaign | None:
        data = await self.redis.hgetall(Keys(merchant).campaign(name))
        return Campaign.from_hash({str(k): str(v) for k, v in data.items()}) if data else None

    async def require(self, merchant: str, name: str) -> Campaign:
        campaign = await self.get(merchant, name)
        if campaign is None:
            names = await self.names(merchant)
            known = ", ".join(names) if names else "none yet"
            raise UserInputError(f"There is no campaign {name!r}. Campaigns: {known}.")
        return campaign

    async def names(self, merchant: str) -> list[str]:
        return sorted(str(n) for n in await self.redis.smembers(Keys(merchant).campaign_names()))

    async def all(self, merchant: str) -> list[Campaign]:
        names = await self.names(merchant)
        keys = Keys(merchant)
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip for all
            for name in names:
                pipe.hgetall(keys.campaign(name))
            found = await pipe.execute()
        return [Campaign.from_hash({str(k): str(v) for k, v in data.items()})
                for data in found if data]

    async def delete(self, merchant: str, name: str) -> None:
        keys = Keys(merchant)
        runs = [str(r) for r in await self.redis.zrange(keys.campaign_runs(name), 0, -1)]
        doomed = [keys.campaign(name), keys.campaign_runs(name)]
        for run_id in runs:
            doomed += [keys.campaign_run(name, run_id), keys.campaign_deliveries(name, run_id)]
        pipe = self.redis.pipeline()
        pipe.srem(keys.campaign_names(), name)
        pipe.delete(*doomed)
        await pipe.execute()

    # Runs ------------------------------------------------------------------------------
    async def run_info(self, merchant: str, name: str, run_id: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in
                (await self.redis.hgetall(Keys(merchant).campaign_run(name, run_id))).items()}

    async def record_run(self, merchant: str, name: str, run_id: str, scheduled_ts: float,
                         **fields: Any) -> None:
        keys = Keys(merchant)
        pipe = self.redis.pipeline()
        pipe.zadd(keys.campaign_runs(name), {run_id: scheduled_ts})
        pipe.hset(keys.campaign_run(name, run_id),
                  mapping={k: str(v) for k, v in fields.items()})
        pipe.zremrangebyrank(keys.campaign_runs(name), 0, -HISTORY_KEEP - 1)
        await pipe.execute()

    async def claim_run_text(self, merchant: str, name: str, run_id: str, text: str) -> str:
        """Fix the text of a run once: a resumed run posts what its first attempt wrote."""
        key = Keys(merchant).campaign_run(name, run_id)
        await self.redis.hsetnx(key, "text", text)
        return str(await self.redis.hget(key, "text"))

    async def recent_runs(self, merchant: str, name: str,
                          limit: int = 10) -> list[tuple[str, dict[str, str]]]:
        keys = Keys(merchant)
        run_ids = [str(r) for r in await self.redis.zrevrange(keys.campaign_runs(name), 0,
                                                               limit - 1)]
        return [(r, await self.run_info(merchant, name, r)) for r in run_ids]

    # Deliveries ------------------------------------------------------------------------
    async def deliveries(self, merchant: str, name: str, run_id: str) -> dict[str, Delivery]:
        raw = await self.redis.hgetall(Keys(merchant).campaign_deliveries(name, run_id))
        return {str(k): Delivery.from_json(str(v)) for k, v in raw.items()}

    async def record_delivery(self, merchant: str, name: str, run_id: str,
                              delivery: Delivery) -> None:
        delivery.at = delivery.at or time.time()
        await self.redis.hset(Keys(merchant).campaign_deliveries(name, run_id),
                              delivery.target, delivery.to_json())

    async def reserve_dm(self, merchant: str, member_key: str, run_key: str, cap: int,
                         window_s: int) -> bool:
        """Take one of the member's `cap` campaign DMs per `window_s`; True when granted."""
        granted = await self.redis.eval(  # type: ignore[misc]
            _RESERVE_DM, 1, Keys(merchant).campaign_dm_log(member_key), run_key,
            str(time.time()), str(window_s), str(cap))
        return bool(granted)

    async def release_dm(self, merchant: str, member_key: str, run_key: str) -> None:
        await self.redis.zrem(Keys(merchant).campaign_dm_log(member_key), run_key)

    # Channels, opt-ins and community activity -----------------------------------------
    async def note_channel(self, merchant: str, channel_key: str,
                           where: CommunityRef | None = None) -> None:
        """A channel the bot has seen; `where` (the message's place) also records which
        community it lies in, so that targets are checked against the approved ones."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(Keys(merchant).campaign_channels(), channel_key)
            if where is not None:
                places.note_channel(pipe, merchant, where)
            await pipe.execute()

    async def known_channels(self, merchant: str) -> set[str]:
        """The channels seen that lie in communities the merchant approved: nothing of a
        community it did not approve is offered as a target (or named in an error)."""
        seen = {str(c) for c in await self.redis.smembers(Keys(merchant).campaign_channels())}
        return await places.approved_channels(self.redis, merchant, seen)

    async def set_offers(self, merchant: str, member_key: str, opted_in: bool) -> None:
        key = Keys(merchant).offers_opt_in()
        await (self.redis.sadd(key, member_key) if opted_in
               else self.redis.srem(key, member_key))

    async def opted_in(self, merchant: str, members: list[str]) -> list[str]:
        if not members:
            return []
        flags = await self.redis.smismember(Keys(merchant).offers_opt_in(), members)
        return [m for m, flag in zip(members, flags, strict=True) if flag]

    async def all_opted_in(self, merchant: str) -> list[str]:
        return sorted(str(m) for m in await self.redis.smembers(Keys(merchant).offers_opt_in()))

    async def note_question(self, merchant: str, text: str, at: float) -> None:
        key = Keys(merchant).recent_questions()
        pipe = self.redis.pipeline()
        pipe.lpush(key, json.dumps({"q": text[:300], "at": at}))
        pipe.ltrim(key, 0, QUESTIONS_KEEP - 1)
        await pipe.execute()

    async def questions_since(self, merchant: str, since: float) -> list[str]:
        raw = await self.redis.lrange(Keys(merchant).recent_questions(), 0, -1)
        items = [json.loads(str(r)) for r in raw]
        return [str(i["q"]) for i in items if float(i["at"]) >= since]

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        keys = Keys(merchant)
        await self.redis.srem(keys.offers_opt_in(), member_key)
        for name in await self.names(merchant):
            for run_id in await self.redis.zrange(keys.campaign_runs(name), 0, -1):
                key = keys.campaign_deliveries(name, str(run_id))
                raw = await self.redis.hget(key, member_key)
                if raw is None:
                    continue
                delivery = Delivery.from_json(str(raw))
                delivery.target = pseudonym
                pipe = self.redis.pipeline()
                pipe.hset(key, pseudonym, delivery.to_json())
                pipe.hdel(key, member_key)
                await pipe.execute()

    # Post drafts -----------------------------------------------------------------------
    async def save_draft(self, merchant: str, draft_id: str, data: dict[str, str],
                         ttl_s: int = 7 * 86400) -> None:
        key = Keys(merchant).post_draft(draft_id)
        await self.redis.hset(key, mapping=_m(data))
        await self.redis.expire(key, ttl_s)

    async def draft(self, merchant: str, draft_id: str) -> dict[str, str]:
        data = await self.redis.hgetall(Keys(merchant).post_draft(draft_id))
        if not data:
            raise UserInputError(f"There is no draft {draft_id!r} (drafts are kept for a week). "
                                 "Start a new one with /post draft.")
        return {str(k): str(v) for k, v in data.items()}


def _m(values: dict[str, str]) -> dict[Any, Any]:
    return dict(values)  # redis-py's hset mapping type is invariant in its key type
