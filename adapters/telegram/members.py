"""Telegram joins and leaves → `bot.events.MembershipChange`, and personal invite links.

Two sources report a join: the `chat_member` update (only where the bot is an administrator,
and it names the invite link used) and the `new_chat_members` / `left_chat_member` service
message (every group, no link). A supergroup with the bot as admin gets both, in no
guaranteed order, so one source is used per chat: `chat_member` where Telegram sends it (the
bot is an admin there: `getChatMember`, kept up to date by `my_chat_member`; when that cannot
be read, whether such an update was seen in the chat), the service message elsewhere.
Picking by chat rather than deduplicating events keeps the invite link: whichever arrives
first, the join is reported once and from the update that says which link was used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from telegram import Chat, ChatMember, ChatMemberUpdated, Message, Update, User
from telegram.constants import ChatInviteLinkLimit, ChatMemberStatus
from telegram.error import TelegramError
from telegram.ext import ExtBot

from adapters.telegram.translate import community_of
from bot.events import CommunityRef, MemberRef, MembershipChange, Platform
from bot.ports import AdapterHost
from bot.storage.keys import telegram as tg_key

log = logging.getLogger(__name__)

INVITE_TIMEOUT_S = 15.0  # `/invite` waits this long for a link, then answers without one
BOT_STATUS_S = 300.0  # the bot's own rights change rarely, and `my_chat_member` says when
_SEEN_TTL_S = 30 * 24 * 3600
_MEMBER_STATUSES = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR,
                    ChatMemberStatus.MEMBER}
_ADMIN_STATUSES = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR}


def is_member(member: ChatMember) -> bool:
    """In the chat: owner, admin, member, or restricted but still a member."""
    if member.status == ChatMemberStatus.RESTRICTED:
        return bool(getattr(member, "is_member", False))
    return member.status in _MEMBER_STATUSES


def change_from_update(update: ChatMemberUpdated) -> MembershipChange | None:
    """A `chat_member` update as a join or leave; None for bots, private chats and changes
    that keep the user a member (promotions, restrictions) or outside (a ban after leaving)."""
    user = update.new_chat_member.user
    community = community_of(update.chat)
    if user.is_bot or community is None:
        return None
    was, now = is_member(update.old_chat_member), is_member(update.new_chat_member)
    if was == now:
        return None
    invite = None
    if now and update.invite_link is not None:
        # A link we named `ref_<code>` names the referrer; the URL matches a registered one.
        invite = update.invite_link.name or update.invite_link.invite_link
    return MembershipChange(platform=Platform.TELEGRAM, member=_member(user),
                            community=community, joined=now, invite=invite,
                            at=update.date.timestamp())


def changes_from_service_message(message: Message) -> list[MembershipChange]:
    """`new_chat_members` / `left_chat_member` as joins and leaves (no link: Telegram does
    not say which one was used); bots are left out."""
    community = community_of(message.chat)
    if community is None:
        return []
    at = message.date.timestamp()
    joined = [MembershipChange(platform=Platform.TELEGRAM, member=_member(user),
                               community=community, joined=True, at=at)
              for user in message.new_chat_members if not user.is_bot]
    left = message.left_chat_member
    if left is not None and not left.is_bot:
        joined.append(MembershipChange(platform=Platform.TELEGRAM, member=_member(left),
                                       community=community, joined=False, at=at))
    return joined


class Membership:
    """Feeds the core's `membership` from updates and makes invite links for `/invite`."""

    def __init__(self, bot: ExtBot[Any], redis: aioredis.Redis, bot_id: str,
                 invite_timeout_s: float = INVITE_TIMEOUT_S) -> None:
        self.bot = bot
        self.redis = redis
        self.bot_id = bot_id
        self.invite_timeout_s = invite_timeout_s
        self._bot_admin: dict[int, tuple[float, bool]] = {}  # chat → (valid until, admin)

    async def handle(self, update: Update, host: AdapterHost) -> bool:
        """Report the join or leave in `update`; False when it is not about membership."""
        if update.chat_member is not None:
            await self._mark_chat_member_source(update.chat_member.chat.id)
            change = change_from_update(update.chat_member)
            if change is not None:
                await self._report(host, change)
            return True
        if update.my_chat_member is not None:  # the bot's own rights or membership changed
            mine = update.my_chat_member
            admin = mine.new_chat_member.status in _ADMIN_STATUSES
            self._bot_admin[mine.chat.id] = (time.monotonic() + BOT_STATUS_S, admin)
            if not admin:  # demoted or removed: no more chat_member updates from this chat
                await self._forget_chat_member_source(mine.chat.id)
            return True
        message = update.message
        if message is None or not (message.new_chat_members or message.left_chat_member):
            return False
        if await self._chat_member_source(message.chat):
            return True  # the chat_member update for the same join carries the link
        for change in changes_from_service_message(message):
            await self._report(host, change)
        return True

    async def create_invite(self, community: CommunityRef, name: str) -> str | None:
        """`createChatInviteLink` named `name` (dropped when longer than Telegram allows: the
        link is registered by its URL anyway); None when the bot may not make one."""
        if community.platform != Platform.TELEGRAM:
            return None
        try:
            chat_id = int(community.community_id)
        except ValueError:
            return None
        label = name if len(name) <= ChatInviteLinkLimit.NAME_LENGTH else None
        try:
            async with asyncio.timeout(self.invite_timeout_s):
                # One 429 retry at most: a member is waiting for the answer.
                link = await self.bot.create_chat_invite_link(chat_id, name=label,
                                                              rate_limit_args=1)
        except TimeoutError:
            log.warning("no invite link for chat %s within %.0f s", chat_id,
                        self.invite_timeout_s)
            return None
        except TelegramError as exc:  # typically not an admin or no can_invite_users
            log.warning("Telegram refused an invite link for chat %s: %s", chat_id, exc)
            return None
        return link.invite_link

    async def _report(self, host: AdapterHost, change: MembershipChange) -> None:
        try:
            await host.membership(change)
        except Exception:
            # Logged, not raised: a lost join must not stop the chat's other updates.
            log.exception("could not record %s %s %s", change.member.key,
                          "joining" if change.joined else "leaving", change.community.key)

    async def _mark_chat_member_source(self, chat_id: int) -> None:
        try:
            await self.redis.set(self._seen_key(chat_id), "1", ex=_SEEN_TTL_S)
        except Exception:
            log.warning("could not note chat_member updates for chat %s", chat_id)

    async def _forget_chat_member_source(self, chat_id: int) -> None:
        try:
            await self.redis.delete(self._seen_key(chat_id))
        except Exception:
            log.warning("could not clear the chat_member mark of chat %s", chat_id)

    async def _chat_member_source(self, chat: Chat) -> bool:
        """Whether `chat_member` updates report this chat's joins (so service messages must
        not): the bot is an administrator there or, when that cannot be read, such an update
        has been seen there."""
        admin = await self._bot_is_admin(chat.id)
        if admin is not None:
            return admin
        try:
            return bool(await self.redis.exists(self._seen_key(chat.id)))
        except Exception:
            # Neither known: count the service message. Should a chat_member update for the
            # same join follow, the core ignores the repeat (a referral is recorded once).
            log.warning("could not read the chat_member mark of chat %s", chat.id)
            return False

    async def _bot_is_admin(self, chat_id: int) -> bool | None:
        """The bot's admin status in `chat_id` (cached; None when Telegram would not say)."""
        cached = self._bot_admin.get(chat_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            me = await self.bot.get_chat_member(chat_id, int(self.bot_id))
        except TelegramError as exc:
            log.warning("could not read the bot's status in chat %s: %s", chat_id, exc)
            return None
        admin = me.status in _ADMIN_STATUSES
        self._bot_admin[chat_id] = (time.monotonic() + BOT_STATUS_S, admin)
        return admin

    def _seen_key(self, chat_id: int) -> str:
        return tg_key(self.bot_id, f"chat_member_source:{chat_id}")


def _member(user: User) -> MemberRef:
    return MemberRef(Platform.TELEGRAM, str(user.id), user.full_name)
