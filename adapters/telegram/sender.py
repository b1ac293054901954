"""`Outbound` → Telegram messages: safe HTML, 4096-character pieces, buttons, files, DMs."""

from __future__ import annotations

import asyncio
import html
import logging
from collections import OrderedDict
from dataclasses import dataclass

import redis.asyncio as aioredis
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    ReplyParameters,
)
from telegram.constants import MessageLimit, ParseMode
from telegram.error import ChatMigrated, Forbidden

from adapters.telegram.translate import CallbackActions, ReplyTarget
from bot.events import Outbound, OutboundFile
from bot.ports import split_message
from bot.storage.keys import telegram as tg_key

log = logging.getLogger(__name__)

TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4096, counted on the text after HTML parsing
CAPTION_LIMIT = MessageLimit.CAPTION_LENGTH
SENT_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Chunk:
    """One message to post: HTML and the visible length Telegram will count."""

    html: str
    visible: int


def render(outbound: Outbound, limit: int = TEXT_LIMIT) -> list[Chunk]:
    """The outbound's text split on sentence boundaries, each piece HTML-escaped, with the
    sources line (italic) on the last piece when it fits, else on its own."""
    pieces = split_message(outbound.text, limit)
    chunks = [Chunk(html.escape(p, quote=False), len(p)) for p in pieces]
    sources = outbound.sources_line()
    if sources:
        sources = sources[:limit]
        line = f"<i>{html.escape(sources, quote=False)}</i>"
        if chunks and chunks[-1].visible + 2 + len(sources) <= limit:
            last = chunks[-1]
            chunks[-1] = Chunk(f"{last.html}\n\n{line}", last.visible + 2 + len(sources))
        else:
            chunks.append(Chunk(line, len(sources)))
    return chunks


class Sender:
    """Posts outbounds in order: one chat's messages never overtake each other."""

    def __init__(self, bot: Bot, redis: aioredis.Redis, bot_id: str,
                 callbacks: CallbackActions) -> None:
        self.bot = bot
        self.redis = redis
        self.bot_id = bot_id
        self.callbacks = callbacks
        self._chat_locks: OrderedDict[int | str, asyncio.Lock] = OrderedDict()
        self._migrated: dict[int | str, int] = {}

    async def send(self, outbound: Outbound, target: ReplyTarget | None) -> list[str]:
        """Post `outbound` as a reply to `target`, or to `outbound.destination`; returns the
        ids (`chat:message`) of what was posted."""
        if outbound.idempotency_key and not await self._first_time(outbound.idempotency_key):
            log.info("not posting %s twice", outbound.idempotency_key)
            return []
        try:
            return await self._send(outbound, target)
        except BaseException:
            if outbound.idempotency_key:  # not posted: a retry must be allowed to post it
                await self.redis.delete(tg_key(self.bot_id, f"sent:{outbound.idempotency_key}"))
            raise

    async def _send(self, outbound: Outbound, target: ReplyTarget | None) -> list[str]:
        chat_id, thread_id, reply_to = self._where(outbound, target)
        if outbound.private and target is not None and target.is_group:
            try:
                return await self._post(target.user_id, None, None, outbound)
            except Forbidden:
                # The member never opened a chat with the bot: say so where they asked.
                note = Outbound(text="I have a private answer for you — open a chat with "
                                     f"@{self.bot.username}, press Start and ask again.")
                return await self._post(chat_id, thread_id, reply_to, note)
        return await self._post(chat_id, thread_id, reply_to, outbound)

    def _where(self, outbound: Outbound,
               target: ReplyTarget | None) -> tuple[int | str, int | None, int | None]:
        dest = outbound.destination
        if dest is not None:
            chat = dest.channel_id or dest.user_id
            if chat is None:
                raise ValueError("a Telegram destination needs a channel_id or a user_id")
            chat_id: int | str = int(chat) if chat.lstrip("-").isdigit() else chat
            return chat_id, int(dest.thread_id) if dest.thread_id else None, None
        if target is None:
            raise ValueError("an Outbound without a destination must answer a known message")
        return target.chat_id, target.thread_id, target.message_id

    async def _post(self, chat_id: int | str, thread_id: int | None, reply_to: int | None,
                    outbound: Outbound) -> list[str]:
        chat_id = self._migrated.get(chat_id, chat_id)
        async with self._lock(chat_id):
            try:
                return await self._post_locked(chat_id, thread_id, reply_to, outbound)
            except ChatMigrated as exc:
                # A group became a supergroup: its id changed; post there from now on.
                self._migrated[chat_id] = exc.new_chat_id
                return await self._post_locked(exc.new_chat_id, thread_id, reply_to, outbound)

    async def _post_locked(self, chat_id: int | str, thread_id: int | None,
                           reply_to: int | None, outbound: Outbound) -> list[str]:
        ids: list[str] = []
        chunks = render(outbound)
        markup = await self._keyboard(outbound)
        reply = (ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                 if reply_to is not None else None)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            message = await self.bot.send_message(
                chat_id=chat_id, text=chunk.html, parse_mode=ParseMode.HTML,
                message_thread_id=thread_id, reply_parameters=reply if i == 0 else None,
                reply_markup=markup if last and not outbound.files else None,
            )
            ids.append(_id(message))
        for j, file in enumerate(outbound.files):
            last_file = j == len(outbound.files) - 1
            message = await self._send_file(chat_id, thread_id, file,
                                            markup if last_file else None,
                                            reply if not chunks and j == 0 else None)
            ids.append(_id(message))
        if outbound.idempotency_key:
            await self.redis.set(tg_key(self.bot_id, f"sent:{outbound.idempotency_key}"),
                                 ",".join(ids), ex=SENT_TTL_S)
        return ids

    async def _send_file(self, chat_id: int | str, thread_id: int | None, file: OutboundFile,
                         markup: InlineKeyboardMarkup | None,
                         reply: ReplyParameters | None) -> Message:
        upload = InputFile(file.data, filename=file.filename)
        if file.content_type.startswith("image/"):
            return await self.bot.send_photo(chat_id=chat_id, photo=upload,
                                             message_thread_id=thread_id, reply_markup=markup,
                                             reply_parameters=reply)
        return await self.bot.send_document(chat_id=chat_id, document=upload,
                                            message_thread_id=thread_id, reply_markup=markup,
                                            reply_parameters=reply)

    async def _keyboard(self, outbound: Outbound) -> InlineKeyboardMarkup | None:
        if not outbound.buttons:
            return None
        rows = []
        for button in outbound.buttons:
            if button.url:
                rows.append([InlineKeyboardButton(button.label, url=button.url)])
            else:
                data = await self.callbacks.encode(button.action)
                rows.append([InlineKeyboardButton(button.label, callback_data=data)])
        return InlineKeyboardMarkup(rows)

    async def _first_time(self, key: str) -> bool:
        return bool(await self.redis.set(tg_key(self.bot_id, f"sent:{key}"), "sending",
                                         nx=True, ex=SENT_TTL_S))

    def _lock(self, chat_id: int | str) -> asyncio.Lock:
        lock = self._chat_locks.get(chat_id)
        if lock is None:
            lock = self._chat_locks[chat_id] = asyncio.Lock()
            if len(self._chat_locks) > 4096:  # forget idle chats; never one in use
                for key, old in list(self._chat_locks.items())[:1024]:
                    if not old.locked():
                        del self._chat_locks[key]
        return lock


def _id(message: Message) -> str:
    return f"{message.chat_id}:{message.message_id}"
