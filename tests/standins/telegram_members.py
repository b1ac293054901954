"""The Bot API's member side for the Telegram stand-in: invite links, `chat_member` updates,
join/leave service messages and `getChatMember`.

Kept to what Telegram does: `createChatInviteLink` needs the bot to be an administrator with
`can_invite_users` (else 400 "not enough rights"), names are at most 32 characters, and
`chat_member` updates are only sent where the bot is an administrator and only to a bot that
listed "chat_member" in `allowed_updates` (the default list leaves it out).
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

from tests.standins.telegram_errors import ApiError

NAME_LIMIT = 32
MEMBER_LIMIT = 99_999
_ADMIN_FLAGS = ("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages",
                "can_manage_video_chats", "can_restrict_members", "can_promote_members",
                "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories",
                "can_delete_stories")
# What Telegram sends a bot that never said which updates it wants.
DEFAULT_ALLOWED = ("message", "edited_message", "channel_post", "edited_channel_post",
                   "inline_query", "chosen_inline_result", "callback_query", "shipping_query",
                   "pre_checkout_query", "poll", "poll_answer", "my_chat_member",
                   "chat_join_request", "chat_boost", "removed_chat_boost")


class MemberEvents:
    """Mixed into `TelegramStandIn` (which provides `push`, `user`, `group`, `admins`, ...)."""

    # Provided by TelegramStandIn.
    bot_id: int
    admins: dict[int, dict[int, str]]
    _chats: dict[int, dict[str, Any]]
    _users: dict[int, dict[str, Any]]
    _message_ids: itertools.count[int]

    def _init_members(self) -> None:
        self.invite_links: list[dict[str, Any]] = []  # every link the bot created, as returned
        self.invite_requests: list[dict[str, Any]] = []  # the parameters it sent
        self.members: dict[int, dict[int, str]] = {}  # chat → user → status
        self.bot_rights: dict[int, dict[str, bool]] = {}  # chat → the bot's admin rights
        self.allowed_updates: list[str] = list(DEFAULT_ALLOWED)

    # Control

    def promote_bot(self, chat_id: int, can_invite_users: bool = True) -> list[int]:
        """Make the bot an administrator of `chat_id`; queues the `my_chat_member` update."""
        return self.promote(chat_id, self.bot_id, can_invite_users)

    def promote(self, chat_id: int, user_id: int, can_invite_users: bool = True) -> list[int]:
        """Make `user_id` an administrator: still a member, so no join and no leave."""
        old = self._member_json(chat_id, user_id)
        self.admins[chat_id][user_id] = "administrator"
        if user_id == self.bot_id:
            self.bot_rights[chat_id] = {f: f == "can_manage_chat" or
                                        (f == "can_invite_users" and can_invite_users)
                                        for f in _ADMIN_FLAGS}
        return self._queue(chat_id, user_id, old, None, False, {})

    def demote(self, chat_id: int, user_id: int) -> list[int]:
        """Take `user_id`'s (or the bot's) admin rights away: still a member."""
        old = self._member_json(chat_id, user_id)
        self.admins[chat_id].pop(user_id, None)
        if user_id == self.bot_id:
            self.bot_rights.pop(chat_id, None)
        self.members.setdefault(chat_id, {})[user_id] = "member"
        return self._queue(chat_id, user_id, old, None, False, {})

    def join(self, chat_id: int, user_id: int, link: dict[str, Any] | None = None, *,
             service_message: bool = True, service_first: bool = False) -> list[int]:
        """`user_id` joins `chat_id` (through `link`, a link `createChatInviteLink` returned).
        Queues what Telegram would: the `chat_member` update where the bot is an admin and
        asked for them, and the `new_chat_members` service message. Returns the update ids."""
        user = self._user_json(user_id)
        old = self._member_json(chat_id, user_id)
        self.members.setdefault(chat_id, {})[user_id] = "member"
        service = (lambda: self._service(chat_id, user, {"new_chat_members": [user]})) \
            if service_message else None
        return self._queue(chat_id, user_id, old, service, service_first,
                           {"invite_link": link} if link else {})

    def leave(self, chat_id: int, user_id: int, *, kicked: bool = False,
              service_message: bool = True, service_first: bool = False) -> list[int]:
        """`user_id` leaves `chat_id` (or is banned: `kicked`)."""
        user = self._user_json(user_id)
        old = self._member_json(chat_id, user_id)
        self.members.setdefault(chat_id, {})[user_id] = "kicked" if kicked else "left"
        service = (lambda: self._service(chat_id, user, {"left_chat_member": user})) \
            if service_message else None
        return self._queue(chat_id, user_id, old, service, service_first, {})

    # The Bot API

    async def _m_createChatInviteLink(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(p["chat_id"])
        self.invite_requests.append(dict(p))
        if chat_id not in self._chats:
            raise ApiError(400, "Bad Request: chat not found")
        if self.admins.get(chat_id, {}).get(self.bot_id) is None:
            raise ApiError(400, "Bad Request: not enough rights to manage chat invite link")
        if not self.bot_rights.get(chat_id, {}).get("can_invite_users"):
            raise ApiError(400, "Bad Request: not enough rights to manage chat invite link")
        name = p.get("name")
        if name is not None and len(str(name)) > NAME_LIMIT:
            raise ApiError(400, "Bad Request: invite link name is too long")
        limit = p.get("member_limit")
        if limit is not None and not 1 <= int(limit) <= MEMBER_LIMIT:
            raise ApiError(400, "Bad Request: wrong member limit specified")
        joins = str(p.get("creates_join_request", "")).lower() == "true"
        if joins and limit is not None:
            raise ApiError(400, "Bad Request: member limit can't be specified for links "
                                "requiring administrator approval")
        link: dict[str, Any] = {
            "invite_link": f"https://t.me/+{secrets.token_urlsafe(12)}",
            "creator": self._bot_user(), "creates_join_request": joins,  # type: ignore[attr-defined]
            "is_primary": False, "is_revoked": False,
        }
        if name:
            link["name"] = str(name)
        if limit is not None:
            link["member_limit"] = int(limit)
        if p.get("expire_date") is not None:
            link["expire_date"] = int(p["expire_date"])
        self.invite_links.append(link)
        return link

    async def _m_getChatMember(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id, user_id = int(p["chat_id"]), int(p["user_id"])
        if chat_id not in self._chats:
            raise ApiError(400, "Bad Request: chat not found")
        return self._member_json(chat_id, user_id)

    def _note_allowed(self, p: dict[str, Any]) -> None:
        """getUpdates / setWebhook: a given list replaces the last one (Telegram keeps it)."""
        if p.get("allowed_updates") is not None:
            self.allowed_updates = list(p["allowed_updates"]) or list(DEFAULT_ALLOWED)

    # Internals

    def _queue(self, chat_id: int, user_id: int, old: dict[str, Any],
               service: Any, service_first: bool, extra: dict[str, Any]) -> list[int]:
        ids: list[int] = []
        if service is not None and service_first:
            ids.append(service())
        if user_id == self.bot_id:  # the bot itself hears of it as `my_chat_member`
            ids.append(self._chat_member_update("my_chat_member", chat_id, user_id, old, extra))
            if service is not None and not service_first:
                ids.append(service())
            return ids
        bot_is_admin = self.admins.get(chat_id, {}).get(self.bot_id) in ("administrator",
                                                                          "creator")
        if bot_is_admin and "chat_member" in self.allowed_updates:
            ids.append(self._chat_member_update("chat_member", chat_id, user_id, old, extra))
        if service is not None and not service_first:
            ids.append(service())
        return ids

    def _chat_member_update(self, kind: str, chat_id: int, user_id: int,
                            old: dict[str, Any], extra: dict[str, Any] | None = None) -> int:
        # A join or leave is the member's own doing; the bot's promotion is its creator's.
        owner = next((u for u, s in self.admins.get(chat_id, {}).items() if s == "creator"), 0)
        actor = self._user_json(user_id if kind == "chat_member" else owner or user_id)
        body = {"chat": self._chat(chat_id), "from": actor, "date": int(time.time()),
                "old_chat_member": old, "new_chat_member": self._member_json(chat_id, user_id),
                **(extra or {})}
        return int(self.push({kind: body}))  # type: ignore[attr-defined]

    def _service(self, chat_id: int, user: dict[str, Any], what: dict[str, Any]) -> int:
        return int(self.push({"message": {  # type: ignore[attr-defined]
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": self._chat(chat_id), "from": user, **what}}))

    def _user_json(self, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_id:
            return dict(self._bot_user())  # type: ignore[attr-defined]
        return self._users.get(user_id) or self.user(user_id)  # type: ignore[attr-defined]

    def _chat(self, chat_id: int) -> dict[str, Any]:
        return self._chats.get(chat_id) or self.group(chat_id)  # type: ignore[attr-defined]

    def _member_json(self, chat_id: int, user_id: int) -> dict[str, Any]:
        user = self._user_json(user_id)
        status = self.admins.get(chat_id, {}).get(user_id) \
            or self.members.get(chat_id, {}).get(user_id, "left")
        if status == "administrator":
            rights = self.bot_rights.get(chat_id) if user_id == self.bot_id else None
            return {"status": status, "user": user,
                    **(rights or {f: f == "can_manage_chat" for f in _ADMIN_FLAGS})}
        if status == "creator":
            return {"status": status, "user": user, "is_anonymous": False}
        if status == "kicked":
            return {"status": status, "user": user, "until_date": 0}
        return {"status": status, "user": user}
