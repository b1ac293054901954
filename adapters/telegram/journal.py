"""Where each idempotent send stands, kept in Redis: a process killed mid-send leaves proof
of which messages reached Telegram, which provably did not, and which were on the wire."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from telegram.error import BadRequest, NetworkError, TelegramError

from bot.storage.keys import telegram as tg_key

log = logging.getLogger(__name__)

SENT_TTL_S = 7 * 24 * 3600

QUEUED = "queued"  # no request for the next message is out: posting it cannot repeat it
WIRE = "wire"  # a request is out and unanswered: Telegram may or may not have posted it
SENT = "sent"  # every message posted; `ids` are Telegram's


@dataclass
class Entry:
    state: str
    ids: list[str] = field(default_factory=list)  # `chat:message` of the parts posted so far

    def to_json(self) -> str:
        return json.dumps({"state": self.state, "ids": self.ids})

    @classmethod
    def parse(cls, raw: str) -> Entry:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("state") in (QUEUED, WIRE, SENT):
            return cls(str(data["state"]), [str(i) for i in data.get("ids") or []])
        # Written before this journal: "sending" (fate unknown) or the ids joined by commas.
        if raw == "sending" or not raw:
            return cls(WIRE)
        return cls(SENT, raw.split(","))


class SendJournal:
    """One entry per idempotency key, shared by every process of the bot."""

    def __init__(self, redis: aioredis.Redis, bot_id: str) -> None:
        self.redis = redis
        self.bot_id = bot_id

    def _key(self, idempotency_key: str) -> str:
        return tg_key(self.bot_id, f"sent:{idempotency_key}")

    async def open(self, idempotency_key: str) -> Entry:
        """The entry of `idempotency_key`: a new one is queued with nothing posted."""
        key = self._key(idempotency_key)
        fresh = Entry(QUEUED)
        if await self.redis.set(key, fresh.to_json(), nx=True, ex=SENT_TTL_S):
            return fresh
        raw = await self.redis.get(key)
        return Entry.parse(str(raw)) if raw is not None else fresh

    async def save(self, idempotency_key: str, entry: Entry) -> None:
        await self.redis.set(self._key(idempotency_key), entry.to_json(), ex=SENT_TTL_S)


class Flight:
    """One message of an idempotent send on its way out. The flood limiter marks it `queued`
    while it waits for a slot (and after Telegram refused it) and `wire` just before the HTTP
    request, so that a kill during the — often long — wait is known not to have posted."""

    def __init__(self, journal: SendJournal, idempotency_key: str, entry: Entry) -> None:
        self.journal = journal
        self.idempotency_key = idempotency_key
        self.entry = entry

    async def mark(self, state: str) -> None:
        if self.entry.state != state:
            self.entry.state = state
            await self.journal.save(self.idempotency_key, self.entry)

    async def posted(self, message_id: str, last: bool) -> None:
        self.entry.ids.append(message_id)
        self.entry.state = SENT if last else QUEUED
        await self.journal.save(self.idempotency_key, self.entry)


IN_FLIGHT: ContextVar[Flight | None] = ContextVar("telegram_flight", default=None)
"""Set by the sender around one idempotent Bot API call; read by the flood limiter, which
runs inside that call (same task) right around the HTTP request."""


def refused(exc: BaseException) -> bool:
    """True when Telegram answered and did not post: an error status below 500 (400 Bad
    Request, 403, 429 Retry After, a migrated chat). Timeouts, lost connections and 5xx
    leave it open whether the message was posted."""
    if isinstance(exc, BadRequest):
        return True
    return isinstance(exc, TelegramError) and not isinstance(exc, NetworkError)
