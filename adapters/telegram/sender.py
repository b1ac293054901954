"""`Outbound` → Telegram messages: safe HTML, 4096-character pieces, buttons, files, DMs."""

from __future__ import annotations

import asyncio
import functools
import html
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import redis.asyncio as aioredis
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)
from telegram.constants import MessageLimit, ParseMode
from telegram.error import ChatMigrated, Forbidden, NetworkError

from adapters.telegram.journal import IN_FLIGHT, SENT, WIRE, Flight, SendJournal, refused
from adapters.telegram.pending import PendingPrivate
from adapters.telegram.translate import CallbackActions, ReplyTarget
from bot.events import Outbound, OutboundFile
from bot.ports import DeliveryUncertain, split_message
from bot.storage.store import CONNECTION_ERRORS

log = logging.getLogger(__name__)

TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4096, counted on the text after HTML parsing
CAPTION_LIMIT = MessageLimit.CAPTION_LENGTH


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
        self.journal = SendJournal(redis, bot_id)
        self.pending = PendingPrivate(redis, bot_id)

    async def send(self, outbound: Outbound, target: ReplyTarget | None) -> list[str]:
        """Post `outbound` as a reply to `target`, or to `outbound.destination`; returns the
        ids (`chat:message`) of what was posted.

        Raises:
            DeliveryUncertain: an idempotent outbound whose earlier attempt had a request
                out when it died (or lost its connection): Telegram cannot show whether that
                posted, and bots cannot read a chat's history to find out.
        """
        flight: Flight | None = None
        if outbound.idempotency_key:
            entry = await self.journal.open(outbound.idempotency_key)
            if entry.state == SENT:
                log.info("not posting %s twice", outbound.idempotency_key)
                return list(entry.ids)
            if entry.state == WIRE:
                raise DeliveryUncertain(
                    "an earlier attempt was cut off while Telegram had the message; Telegram "
                    "does not let bots check whether it was posted")
            flight = Flight(self.journal, outbound.idempotency_key, entry)
        try:
            return await self._send(outbound, target, flight)
        except NetworkError as exc:
            if flight is not None and flight.entry.state == WIRE and not refused(exc):
                raise DeliveryUncertain(f"no answer from Telegram ({exc})") from exc
            raise

    async def _send(self, outbound: Outbound, target: ReplyTarget | None,
                    flight: Flight | None) -> list[str]:
        dest = outbound.destination
        if outbound.private and dest is not None and dest.user_id and dest.channel_id:
            # A private notice with a group to fall back on (a campaign's moderator).
            chat_id, thread_id, _ = self._where(outbound, None)
            user = ReplyTarget(chat_id=int(chat_id), message_id=None, thread_id=thread_id,
                               user_id=int(dest.user_id), is_group=True)
            return await self._privately(outbound, user, flight, answer=False)
        if outbound.private and target is not None and target.is_group:
            return await self._privately(outbound, target, flight, answer=True)
        chat_id, thread_id, reply_to = self._where(outbound, target)
        return await self._post(chat_id, thread_id, reply_to, outbound, flight)

    async def _privately(self, outbound: Outbound, target: ReplyTarget,
                         flight: Flight | None, answer: bool) -> list[str]:
        """To the member's private chat; where Telegram refuses (no chat opened, or the bot
        blocked), the message is held for when they open one, and the group is told, never
        shown the message itself."""
        try:
            return await self._post(target.user_id, None, None, replace(
                outbound, destination=None, private=False), flight)
        except Forbidden as exc:
            log.info("private message to %s refused (%s); telling them in the group",
                     target.user_id, exc)
        try:
            held = await self.pending.hold(target.user_id, outbound)
        except CONNECTION_ERRORS:
            held = False
        return await self._tell_in_group(target, refused_note(
            self.bot.username, target, held=held, answer=answer))

    async def _tell_in_group(self, target: ReplyTarget, note: str) -> list[str]:
        """A short note in the group, mentioning the member by id (a text mention: it pings
        that one member and nobody else)."""
        chat_id: int | str = self._migrated.get(target.chat_id, target.chat_id)
        reply_to, thread_id = target.message_id, target.thread_id
        reply = (ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                 if reply_to is not None else None)
        async with self._lock(chat_id):
            message = await self.bot.send_message(
                chat_id=chat_id, text=note, parse_mode=ParseMode.HTML,
                message_thread_id=thread_id,
                reply_parameters=reply, link_preview_options=LinkPreviewOptions(is_disabled=True))
        return [_id(message)]

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
                    outbound: Outbound, flight: Flight | None) -> list[str]:
        chat_id = self._migrated.get(chat_id, chat_id)
        async with self._lock(chat_id):
            try:
                return await self._post_locked(chat_id, thread_id, reply_to, outbound, flight)
            except ChatMigrated as exc:
                # A group became a supergroup: its id changed; post there from now on.
                self._migrated[chat_id] = exc.new_chat_id
                return await self._post_locked(exc.new_chat_id, thread_id, reply_to, outbound,
                                               flight)

    async def _post_locked(self, chat_id: int | str, thread_id: int | None,
                           reply_to: int | None, outbound: Outbound,
                           flight: Flight | None) -> list[str]:
        chunks = render(outbound)
        markup = await self._keyboard(outbound)
        reply = (ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                 if reply_to is not None else None)
        calls: list[Callable[[], Awaitable[Message]]] = []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            calls.append(functools.partial(
                self.bot.send_message, chat_id=chat_id, text=chunk.html,
                parse_mode=ParseMode.HTML, message_thread_id=thread_id,
                reply_parameters=reply if i == 0 else None,
                reply_markup=markup if last and not outbound.files else None))
        for j, file in enumerate(outbound.files):
            last_file = j == len(outbound.files) - 1
            calls.append(functools.partial(
                self._send_file, chat_id, thread_id, file, markup if last_file else None,
                reply if not chunks and j == 0 else None))
        if flight is None:
            return [_id(await call()) for call in calls]
        # Idempotent: the parts an earlier attempt posted are not posted again.
        for n, call in enumerate(calls[len(flight.entry.ids):], start=len(flight.entry.ids)):
            await flight.mark(WIRE)  # the limiter narrows this to the request itself
            token = IN_FLIGHT.set(flight)
            try:
                message = await call()
            finally:
                IN_FLIGHT.reset(token)
            await flight.posted(_id(message), last=n == len(calls) - 1)
        return list(flight.entry.ids)

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

    def _lock(self, chat_id: int | str) -> asyncio.Lock:
        lock = self._chat_locks.get(chat_id)
        if lock is None:
            lock = self._chat_locks[chat_id] = asyncio.Lock()
            if len(self._chat_locks) > 4096:  # forget idle chats; never one in use
                for key, old in list(self._chat_locks.items())[:1024]:
                    if not old.locked():
                        del self._chat_locks[key]
        return lock


def refused_note(bot_username: str, target: ReplyTarget, *, held: bool,
                 answer: bool) -> str:
    """The group note (HTML) for a member whose private message Telegram refused."""
    mention = (f'<a href="tg://user?id={target.user_id}">'
               f'{html.escape(target.user_name or "Hi", quote=False)}</a>')
    what = "my answer" if answer else "a message for you"
    link = f"https://t.me/{bot_username}?start=private"
    if held:
        return (f"{mention}, I have {what}, but I can't write to you privately until you open "
                f"a chat with me: {link} — tap Start and I'll send it there.")
    return (f"{mention}, I can't write to you privately until you open a chat with me: "
            f"{link} — tap Start, then ask again.")


def _id(message: Message) -> str:
    return f"{message.chat_id}:{message.message_id}"
