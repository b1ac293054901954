"""Communities that already hold a merchant's data, found after an upgrade from the days when
every community served the default merchant unasked (`shopkeep communities list`)."""

from __future__ import annotations

import json
from collections import defaultdict

import redis.asyncio as aioredis

from bot.storage.keys import Keys
from bot.tenancy.communities import COMMUNITY_KEY

_BATCH = 500


async def communities_with_data(redis: aioredis.Redis, merchant: str) -> dict[str, set[str]]:
    """Community key → what of `merchant`'s data mentions it: `listed` (the merchant's set of
    communities), `profiles` (members who wrote there), `token budget` (answers given there),
    `help channels`, `campaign channels` and `unanswered` questions. Only well-formed
    Telegram and Discord keys are returned; a Discord channel alone does not say its server,
    so Discord servers are found through profiles and budgets."""
    keys = Keys(merchant)
    found: dict[str, set[str]] = defaultdict(set)
    for member in await redis.smembers(keys.communities()):
        found[str(member)].add("listed")
    await _from_profiles(redis, keys, found)
    async for key in redis.scan_iter(match=f"{keys.root}:tokens:*", count=_BATCH):
        community = str(key)[len(f"{keys.root}:tokens:"):].rsplit(":", 1)[0]
        found[community].add("token budget")
    for channel in await redis.smembers(keys.help_channels()):
        found[_telegram_chat(str(channel))].add("help channels")
    for channel in await redis.smembers(keys.campaign_channels()):
        found[_telegram_chat(str(channel))].add("campaign channels")
    for raw in await redis.lrange(keys.unanswered(), 0, -1):
        try:
            community = json.loads(raw).get("community")
        except (ValueError, AttributeError):
            continue
        if community:
            found[str(community)].add("unanswered")
    return {c: what for c, what in found.items() if COMMUNITY_KEY.match(c)}


async def _from_profiles(redis: aioredis.Redis, keys: Keys, found: dict[str, set[str]]) -> None:
    start = 0
    while True:
        members = [str(m) for m in await redis.zrange(keys.profile_index(), start,
                                                         start + _BATCH - 1)]
        if not members:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hmget(keys.profile(member), ["meta", "comm"])  # comm: the first layout
            rows = await pipe.execute()
        for meta, first_layout in rows:
            try:
                communities = str((json.loads(meta).get("comm") if meta else first_layout) or "")
            except (ValueError, AttributeError):
                continue
            for community in filter(None, communities.split(",")):
                found[community].add("profiles")
        start += _BATCH


def _telegram_chat(channel_key: str) -> str:
    """`telegram:-100123:45` (a topic) → `telegram:-100123`; a Telegram channel is its chat.
    Other platforms' channel keys are returned as they are (and filtered out later)."""
    platform, _, rest = channel_key.partition(":")
    if platform != "telegram":
        return channel_key
    return f"telegram:{rest.split(':', 1)[0]}"
