"""Telegram updates → `bot.events.Inbound`: who wrote, where, with what privilege and files."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from telegram import Bot, Chat, Message, MessageEntity, Update
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from bot.events import Attachment, CommunityRef, Inbound, MemberRef, Platform, Privilege
from bot.storage.keys import telegram as tg_key

log = logging.getLogger(__name__)

ADMIN_CACHE_S = 60.0
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024  # what the Bot API lets a bot download
CALLBACK_LIMIT = 64  # bytes of callback_data Telegram accepts
CALLBACK_PREFIX = "cb:"
CALLBACK_TTL_S = 90 * 24 * 3600


@dataclass(frozen=True)
class ReplyTarget:
    """Where the answer to an inbound message goes: its chat, topic, message and author."""

    chat_id: int
    message_id: int | None
    thread_id: int | None
    user_id: int
    is_group: bool
    user_name: str = ""  # for a mention when the member must be told something in the group


class AdminCache:
    """`getChatAdministrators`, remembered per chat for a minute (admins change rarely; a
    lookup per message would spend the bot's request budget)."""

    def __init__(self, bot: Bot, ttl_s: float = ADMIN_CACHE_S) -> None:
        self.bot = bot
        self.ttl_s = ttl_s
        self._cache: dict[int, tuple[float, dict[int, str]]] = {}

    async def status(self, chat_id: int, user_id: int) -> str | None:
        now = time.monotonic()
        cached = self._cache.get(chat_id)
        if cached is None or cached[0] < now:
            try:
                admins = await self.bot.get_chat_administrators(chat_id)
            except TelegramError:
                log.warning("could not list the administrators of chat %s", chat_id)
                return None  # treat as a member: refusing is safer than granting
            cached = (now + self.ttl_s, {a.user.id: str(a.status) for a in admins})
            self._cache[chat_id] = cached
        return cached[1].get(user_id)


def privilege_for(status: str | None) -> Privilege:
    if status == ChatMemberStatus.OWNER:
        return Privilege.OWNER
    if status == ChatMemberStatus.ADMINISTRATOR:
        return Privilege.MODERATOR
    return Privilege.MEMBER


class CallbackActions:
    """Button actions as callback_data: short ones inline, long ones as `cb:<hash>` with the
    action kept in Redis (Telegram allows 64 bytes)."""

    def __init__(self, redis: aioredis.Redis, bot_id: str) -> None:
        self.redis = redis
        self.bot_id = bot_id

    async def encode(self, action: str) -> str:
        if len(action.encode()) <= CALLBACK_LIMIT and not action.startswith(CALLBACK_PREFIX):
            return action
        digest = hashlib.sha256(action.encode()).hexdigest()[:24]
        await self.redis.set(tg_key(self.bot_id, f"callback:{digest}"), action,
                             ex=CALLBACK_TTL_S)
        return CALLBACK_PREFIX + digest

    async def decode(self, data: str) -> str | None:
        if not data.startswith(CALLBACK_PREFIX):
            return data
        value = await self.redis.get(tg_key(self.bot_id, f"callback:{data[len(CALLBACK_PREFIX):]}"))
        return str(value) if value is not None else None


class Translator:
    def __init__(self, bot: Bot, admins: AdminCache, callbacks: CallbackActions) -> None:
        self.bot = bot
        self.admins = admins
        self.callbacks = callbacks

    async def inbound(self, update: Update) -> tuple[Inbound, ReplyTarget] | None:
        """The Inbound for a member's message or button click, or None for anything else
        (service messages, other bots, channel posts)."""
        if update.callback_query is not None:
            return await self._callback(update)
        message = update.message or update.edited_message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return None
        text = message.text or message.caption or ""
        attachments: tuple[Attachment, ...] = ()
        if message.document is not None and text.lstrip().startswith("/"):
            attachments = await self._download(message)  # files only ride with commands
        if not text and not attachments:
            return None
        mentions = self._mentions_bot(message)
        if mentions:
            text = _strip_mention(text, self.bot.username)
        reply = message.reply_to_message
        reply_to_bot = bool(reply and reply.from_user and reply.from_user.id == self.bot.id
                            and not _is_topic_root(message))
        member = _member(message)
        chat = message.chat
        target = _target(chat, message, member_id=message.from_user.id,
                         member_name=message.from_user.full_name)
        inbound = Inbound(
            platform=Platform.TELEGRAM, member=member, text=text.strip(),
            community=community_of(chat, target.thread_id),
            message_id=f"{chat.id}:{message.message_id}",
            privilege=await self._privilege(chat, message.from_user.id),
            mentions_bot=mentions, reply_to_bot=reply_to_bot, attachments=attachments,
            sent_at=message.date.timestamp(),
            extras={"edited": update.edited_message is not None, "update_id": update.update_id},
        )
        return inbound, target

    async def _callback(self, update: Update) -> tuple[Inbound, ReplyTarget] | None:
        query = update.callback_query
        assert query is not None
        action = await self.callbacks.decode(query.data or "")
        try:
            await query.answer(text=None if action else "That button has expired.")
        except TelegramError:
            log.info("callback query %s could not be answered (too old)", query.id)
        message = query.message
        if action is None or not isinstance(message, Message):
            return None
        user = query.from_user
        member = MemberRef(Platform.TELEGRAM, str(user.id), user.full_name)
        target = _target(message.chat, None, member_id=user.id, member_name=user.full_name,
                         thread_id=message.message_thread_id if message.is_topic_message
                         else None)
        inbound = Inbound(
            platform=Platform.TELEGRAM, member=member, text=action,
            community=community_of(message.chat, target.thread_id),
            message_id=f"{message.chat.id}:cb:{query.id}",
            privilege=await self._privilege(message.chat, user.id),
            reply_to_bot=True, extras={"callback": True, "update_id": update.update_id},
        )
        return inbound, target

    async def _privilege(self, chat: Chat, user_id: int) -> Privilege:
        if chat.type == Chat.PRIVATE:
            return Privilege.MEMBER  # merchant-configured admin ids are applied by the core
        return privilege_for(await self.admins.status(chat.id, user_id))

    def _mentions_bot(self, message: Message) -> bool:
        username = (self.bot.username or "").lower()
        for entity, value in message.parse_entities().items() | message.parse_caption_entities(
        ).items():
            if entity.type == MessageEntity.MENTION and value.lstrip("@").lower() == username:
                return True
            if entity.type == MessageEntity.TEXT_MENTION and entity.user is not None \
                    and entity.user.id == self.bot.id:
                return True
        text = (message.text or message.caption or "").lower()
        return bool(username) and f"@{username}" in text

    async def _download(self, message: Message) -> tuple[Attachment, ...]:
        document = message.document
        assert document is not None
        if document.file_size and document.file_size > MAX_ATTACHMENT_BYTES:
            log.info("attachment %s is too large to download", document.file_name)
            return ()
        file = await self.bot.get_file(document.file_id)
        data = bytes(await file.download_as_bytearray())
        return (Attachment(filename=document.file_name or "file", data=data,
                           content_type=document.mime_type or "application/octet-stream"),)


def _member(message: Message) -> MemberRef:
    user = message.from_user
    assert user is not None
    return MemberRef(Platform.TELEGRAM, str(user.id), user.full_name)


def _is_topic_root(message: Message) -> bool:
    """In a forum every message "replies" to its topic's creation message; that is not a
    reply to the bot."""
    reply = message.reply_to_message
    return bool(message.is_topic_message and reply is not None
                and reply.message_id == message.message_thread_id)


def _target(chat: Chat, message: Message | None, member_id: int, member_name: str = "",
            thread_id: int | None = None) -> ReplyTarget:
    if message is not None and message.is_topic_message:
        thread_id = message.message_thread_id
    return ReplyTarget(chat_id=chat.id, message_id=message.message_id if message else None,
                       thread_id=thread_id, user_id=member_id, is_group=chat.type != Chat.PRIVATE,
                       user_name=member_name)


def community_of(chat: Chat, thread_id: int | None = None) -> CommunityRef | None:
    """The community of a group chat (None for a private chat): messages and joins alike."""
    if chat.type == Chat.PRIVATE:
        return None
    return CommunityRef(Platform.TELEGRAM, str(chat.id), str(chat.id),
                        str(thread_id) if thread_id is not None else None)


def _strip_mention(text: str, username: str | None) -> str:
    if not username:
        return text
    return re.sub(rf"@{re.escape(username)}\b", "", text, flags=re.IGNORECASE).strip()
