"""Private messages Telegram refused (the member never opened a chat with the bot, or blocked
it), held in Redis for a day and sent as soon as the member writes to the bot privately."""

from __future__ import annotations

import base64
import json
import logging

import redis.asyncio as aioredis

from bot.events import Button, Citation, Destination, Outbound, OutboundFile, Platform
from bot.storage.keys import telegram as tg_key

log = logging.getLogger(__name__)

HOLD_S = 24 * 3600
HOLD_MAX = 10  # messages per member; older ones give way
HOLD_MAX_BYTES = 5 * 1024 * 1024  # a larger file is not held: the member asks again


class PendingPrivate:
    def __init__(self, redis: aioredis.Redis, bot_id: str) -> None:
        self.redis = redis
        self.bot_id = bot_id

    def _key(self, user_id: int) -> str:
        return tg_key(self.bot_id, f"pending_private:{user_id}")

    async def hold(self, user_id: int, outbound: Outbound) -> bool:
        """Keep `outbound` for `user_id`; False when it is too large to keep."""
        if sum(len(f.data) for f in outbound.files) > HOLD_MAX_BYTES:
            return False
        key = self._key(user_id)
        pipe = self.redis.pipeline()
        pipe.rpush(key, _dump(outbound))
        pipe.ltrim(key, -HOLD_MAX, -1)
        pipe.expire(key, HOLD_S)
        await pipe.execute()
        return True

    async def take(self, user_id: int) -> list[Outbound]:
        """Everything held for `user_id`, addressed to their private chat, and forgotten (one
        process takes it: the read and the delete are one transaction)."""
        key = self._key(user_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw, _ = await pipe.execute()
        destination = Destination(Platform.TELEGRAM, user_id=str(user_id))
        return [_load(str(item), destination) for item in raw]


def _dump(outbound: Outbound) -> str:
    return json.dumps({
        "text": outbound.text,
        "citations": [c.as_dict() for c in outbound.citations],
        "buttons": [[b.label, b.action, b.url] for b in outbound.buttons],
        "files": [[f.filename, f.content_type, base64.b64encode(f.data).decode()]
                  for f in outbound.files],
    })


def _load(raw: str, destination: Destination) -> Outbound:
    data = json.loads(raw)
    return Outbound(
        text=data["text"], destination=destination,
        citations=tuple(Citation(**c) for c in data["citations"]),
        buttons=tuple(Button(label, action, url) for label, action, url in data["buttons"]),
        files=tuple(OutboundFile(name, base64.b64decode(blob), kind)
                    for name, kind, blob in data["files"]))
