"""Delivery on Discord: idempotent sends (a journal in Redis per key, and the channel's own
history as proof of what an attempt cut short did post: Discord keeps no nonce to look up),
and the note for a member whose DMs are closed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import discord
import redis.asyncio as aioredis

from adapters.discord.render import Part
from bot.ports import DeliveryUncertain
from bot.storage import keys

log = logging.getLogger(__name__)

SENT_TTL_S = 7 * 24 * 3600
# How far before an attempt's start its messages may be dated (clocks of this host and of
# Discord differ a little), and how much history is read back to find them.
CLOCK_SLACK_S = 30.0
HISTORY_LIMIT = 500


@dataclass
class Attempt:
    """Where one idempotent send stands: begun at `since` (fate unknown until `sent`)."""

    since: float
    sent: bool = False
    ids: list[str] = field(default_factory=list)
    fresh: bool = False  # opened by this call: no earlier attempt to look for

    def to_json(self) -> str:
        return json.dumps({"since": self.since, "sent": self.sent, "ids": self.ids})


class SendJournal:
    def __init__(self, redis: aioredis.Redis, application_id: str) -> None:
        self.redis = redis
        self.application_id = application_id

    def _key(self, idempotency_key: str) -> str:
        return keys.discord(self.application_id, f"sent:{idempotency_key}")

    async def open(self, idempotency_key: str) -> Attempt:
        """This key's attempt: a fresh one starting now, or what an earlier one left."""
        fresh = Attempt(since=time.time())
        if await self.redis.set(self._key(idempotency_key), fresh.to_json(), nx=True,
                                ex=SENT_TTL_S):
            fresh.fresh = True
            return fresh
        raw = await self.redis.get(self._key(idempotency_key))
        if raw is None:
            return await self.open(idempotency_key)  # it expired in between
        data = json.loads(str(raw))
        return Attempt(float(data["since"]), bool(data["sent"]), list(data["ids"]))

    async def done(self, idempotency_key: str, ids: list[str]) -> None:
        attempt = Attempt(time.time(), sent=True, ids=ids)
        await self.redis.set(self._key(idempotency_key), attempt.to_json(), ex=SENT_TTL_S)

    async def forget(self, idempotency_key: str) -> None:
        """Discord refused the request: nothing was posted, a retry starts afresh."""
        await self.redis.delete(self._key(idempotency_key))


async def posted_since(channel: discord.abc.Messageable, me: discord.abc.Snowflake,
                       parts: list[Part], since: float) -> list[str | None]:
    """For each part, the id of the message of ours with its content posted since `since`
    (None where there is none), read from the channel's history.

    Raises:
        DeliveryUncertain: the history cannot be read (no Read Message History right) or a
            part has no text to recognise it by.
    """
    if any(not p.content for p in parts):
        raise DeliveryUncertain("a message without text cannot be found again in the channel")
    after = datetime.fromtimestamp(since - CLOCK_SLACK_S, UTC)
    found: list[str | None] = [None] * len(parts)
    try:
        async for message in channel.history(limit=HISTORY_LIMIT, after=after,
                                             oldest_first=True):
            if message.author.id != me.id:
                continue
            for i, part in enumerate(parts):
                if found[i] is None and message.content == part.content:
                    found[i] = str(message.id)
                    break
    except discord.HTTPException as exc:
        raise DeliveryUncertain(
            f"an earlier attempt was cut off and the channel's history cannot be read to "
            f"check it ({exc.status} {exc.text})") from exc
    return found


async def send_once(journal: SendJournal, channel: discord.abc.Messageable,
                    me: discord.abc.Snowflake, parts: list[Part], key: str,
                    post: Callable[[Part, bool], Awaitable[str]]) -> list[str]:
    """Post `parts` (each with `post(part, is_first)`) once per `key`, whatever happened to
    earlier attempts: the nonce covers a retry within Discord's few minutes, the channel
    history any later one. Returns the message ids.

    Raises:
        DeliveryUncertain: see `posted_since`.
    """
    attempt = await journal.open(key)
    if attempt.sent:
        return list(attempt.ids)
    found: list[str | None] = [None] * len(parts)
    if not attempt.fresh:  # an attempt was cut short: what did it post?
        found = await posted_since(channel, me, parts, attempt.since)
        if any(found):
            log.info("%s: %d of %d messages were posted by an earlier attempt", key,
                     sum(1 for f in found if f), len(parts))
    try:
        for i, part in enumerate(parts):
            if found[i] is None:
                found[i] = await post(part, i == 0)
    except Exception as exc:
        if refused(exc) and not any(found):
            await journal.forget(key)  # Discord said no: nothing of it exists
        raise
    ids = [f for f in found if f is not None]
    await journal.done(key, ids)
    return ids


def dm_refused_note(mention: str, answer: bool = True) -> str:
    if not answer:
        return (f"{mention}, I have a message for you but can't send you a direct message: "
                "allow direct messages from this server's members (Privacy Settings in the "
                "server menu).")
    return (f"{mention}, I can't send you a direct message, so my answer stays private: allow "
            "direct messages from this server's members (Privacy Settings in the server "
            "menu) and ask again — or use the slash command, whose answers only you see.")



def refused(exc: BaseException) -> bool:
    """Discord answered with a client error (403, 404, 400...): the message was not created.
    A 5xx or a lost connection leaves it open."""
    return isinstance(exc, discord.HTTPException) and 400 <= exc.status < 500
