"""Channels checked against the merchant's approved communities: where campaigns and posts
may go, and what an error message may list."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from bot.events import CommunityRef, Platform
from bot.storage.keys import Keys
from bot.tenancy.communities import Communities


def note_channel(pipe: aioredis.client.Pipeline, merchant: str, where: CommunityRef) -> None:
    """Queue on `pipe`: `where`'s channel belongs to `where`'s community (a Discord channel id
    alone does not say its server)."""
    pipe.hset(Keys(merchant).channel_communities(), where.channel_key, where.key)


async def communities_of(redis: aioredis.Redis, merchant: str,
                         channels: Iterable[str]) -> dict[str, str | None]:
    """Channel key → its community key, None where it is not known. A Telegram channel is
    its chat (`telegram:-100123:45` → `telegram:-100123`); the console is one place."""
    channels = list(channels)
    out: dict[str, str | None] = {}
    lookup = []
    for channel in channels:
        platform, _, rest = channel.partition(":")
        if platform == Platform.TELEGRAM.value:
            out[channel] = f"telegram:{rest.split(':', 1)[0]}"
        elif platform == Platform.CONSOLE.value:
            out[channel] = "console:console"
        else:
            lookup.append(channel)
    if lookup:
        found = await redis.hmget(Keys(merchant).channel_communities(), lookup)
        out.update({c: (str(f) if f else None) for c, f in zip(lookup, found, strict=True)})
    return out


async def approved_channels(redis: aioredis.Redis, merchant: str, channels: Iterable[str],
                            unknown_ok: bool = False) -> set[str]:
    """The channels among `channels` that lie in a community `merchant` approved (the console
    always). `unknown_ok` also keeps channels whose community was never recorded (Discord
    channels targeted before approvals existed), for runs of campaigns already made."""
    places = await communities_of(redis, merchant, channels)
    approved = await Communities(redis).approved_keys(merchant)
    return {channel for channel, community in places.items()
            if community == "console:console" or community in approved
            or (community is None and unknown_ok)}
