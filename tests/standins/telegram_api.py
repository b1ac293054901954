"""A local Telegram Bot API (aiohttp on 127.0.0.1) that the real python-telegram-bot talks to.

It keeps the semantics the adapter relies on: long-polled `getUpdates` that forgets updates
below the offset it is given, the 4096-character limit counted after HTML parsing, HTML
that must parse (links become `text_link` / `text_mention` entities), 429 `retry_after`
answers past the flood limits, 403 for a member who never opened a chat with the bot or
blocked it, and files behind `getFile`; joins, leaves and invite links
come from `telegram_members`. Tests drive it through its control
API: the Python methods below (`message`, `callback`, `fail`, `wait_for`, ...) or the same
over HTTP under `/_control/`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import ClientSession, web

from tests.standins.telegram_errors import ApiError
from tests.standins.telegram_members import MemberEvents

TEXT_LIMIT = 4096
_SEND_METHODS = {"sendMessage", "sendDocument", "sendPhoto", "editMessageText"}
_JSON_FIELDS = {"reply_markup", "reply_parameters", "commands", "scope", "allowed_updates",
                "link_preview_options"}
_INT_FIELDS = {"offset", "limit", "timeout", "message_thread_id", "message_id",
               "reply_to_message_id"}
_HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
              "span", "tg-spoiler", "tg-emoji", "blockquote"}
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)")


@dataclass
class Sent:
    """One message the bot posted (or a file it sent), as the stand-in understood it."""

    method: str
    chat_id: int | str
    message_id: int
    text: str = ""  # visible text, after HTML parsing
    raw: str = ""  # what the bot sent, HTML included
    thread_id: int | None = None
    reply_to: int | None = None
    reply_markup: dict[str, Any] | None = None
    file_name: str | None = None
    file_data: bytes = b""
    edits: list[str] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)  # from the HTML, as Telegram


@dataclass
class Fault:
    code: int
    description: str
    retry_after: int | None = None
    migrate_to: int | None = None


class _HtmlText(HTMLParser):
    """Telegram's HTML subset: known tags, properly nested; collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.stack: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self._links: list[tuple[int, str]] = []

    def _offset(self) -> int:  # Telegram counts entity offsets in UTF-16 code units
        return len("".join(self.text).encode("utf-16-le")) // 2

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise ApiError(400, f"Bad Request: can't parse entities: unsupported start tag "
                                f"\"{tag}\"")
        if tag == "a":
            self._links.append((self._offset(), dict(attrs).get("href") or ""))
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            raise ApiError(400, f"Bad Request: can't parse entities: unmatched end tag \"{tag}\"")
        if tag == "a":
            start, href = self._links.pop()
            length = self._offset() - start
            user = re.fullmatch(r"tg://user\?id=(\d+)", href)
            if user:
                self.entities.append({"type": "text_mention", "offset": start,
                                      "length": length, "user": {"id": int(user.group(1))}})
            elif href:
                self.entities.append({"type": "text_link", "offset": start, "length": length,
                                      "url": href})

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def visible_text(raw: str, parse_mode: str | None) -> str:
    return parse_text(raw, parse_mode)[0]


def parse_text(raw: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The visible text and the entities (links, mentions) Telegram makes of `raw`."""
    if (parse_mode or "").upper() != "HTML":
        return raw, []
    if _BARE_AMP.search(raw):
        raise ApiError(400, "Bad Request: can't parse entities: unsupported entity")
    parser = _HtmlText()
    parser.feed(raw)
    parser.close()
    if parser.stack:
        raise ApiError(400, f"Bad Request: can't parse entities: unclosed <{parser.stack[-1]}>")
    return "".join(parser.text), parser.entities


class TelegramStandIn(MemberEvents):
    """The Bot API for one bot. `chat_limit=(20, 60.0)` refuses the 21st message to one group
    within a minute with a 429 whose `retry_after` is `retry_after` seconds."""

    def __init__(self, token: str = "4242:standin-token", username: str = "shopkeep_bot",
                 chat_limit: tuple[int, float] | None = None,
                 global_limit: tuple[int, float] | None = None, retry_after: int = 1) -> None:
        self.token = token
        self.bot_id = int(token.split(":")[0])
        self.username = username
        self.chat_limit = chat_limit
        self.global_limit = global_limit
        self.retry_after = retry_after
        self.port = 0
        self.updates: list[dict[str, Any]] = []
        self.confirmed = 0  # every update below this id is forgotten
        self.sent: list[Sent] = []
        self.calls: Counter[str] = Counter()
        self.rejected: Counter[int] = Counter()  # error code → count
        self.chat_actions: list[tuple[int | str, str]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.admins: dict[int, dict[int, str]] = defaultdict(dict)
        self.dm_open: set[int] = set()  # members who started a chat with the bot
        self.blocked: set[int] = set()  # members who blocked the bot
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.files: dict[str, tuple[str, bytes]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._faults: dict[str, deque[Fault | None]] = defaultdict(deque)
        self._latency: deque[float | None] = deque()
        self.on_the_way = 0  # requests held by slow_next: sent by the bot, not yet handled
        self._sends: dict[int | str, deque[float]] = defaultdict(deque)
        self._all_sends: deque[float] = deque()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._arrived = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._init_members()

    # Life cycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        app.router.add_post("/_control/updates", self._control_update)
        app.router.add_get("/_control/sent", self._control_sent)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._closing = True  # long polls in progress answer at once
        self._wake()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # Control: people, chats, updates

    def user(self, user_id: int, name: str = "") -> dict[str, Any]:
        user = {"id": user_id, "is_bot": False, "first_name": name or f"user{user_id}"}
        self._users[user_id] = user
        return user

    def group(self, chat_id: int, title: str = "Shop fans", forum: bool = False) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": title}
        if forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return chat

    def private(self, user_id: int) -> dict[str, Any]:
        """The member opens (or, after blocking the bot, restarts) a chat with the bot."""
        self.dm_open.add(user_id)
        self.blocked.discard(user_id)
        chat = {"id": user_id, "type": "private",
                "first_name": self._users.get(user_id, {}).get("first_name", "member")}
        self._chats[user_id] = chat
        return chat

    def block(self, user_id: int) -> None:
        """The member blocks the bot: private messages to them are refused from now on."""
        self.blocked.add(user_id)

    def set_admin(self, chat_id: int, user_id: int, status: str = "administrator") -> None:
        self.admins[chat_id][user_id] = status

    def message(self, chat_id: int, user_id: int, text: str = "", *, thread_id: int | None = None,
                reply_to: Sent | int | None = None, document: tuple[str, bytes] | None = None,
                edited: bool = False, message_id: int | None = None,
                **extra: Any) -> int:
        """Queue a member's message; returns its update_id."""
        chat = self._chats.get(chat_id) or (self.private(chat_id) if chat_id > 0
                                            else self.group(chat_id))
        if chat_id > 0:  # writing to the bot opens the chat (and ends a block)
            self.dm_open.add(chat_id)
            self.blocked.discard(chat_id)
        user = self._users.get(user_id) or self.user(user_id)
        msg: dict[str, Any] = {"message_id": message_id or next(self._message_ids),
                               "date": int(time.time()), "chat": chat, "from": user, **extra}
        key = "caption" if document else "text"
        if text:
            msg[key] = text
            entities = _entities(text)
            if entities:
                msg[f"{key}_entities" if document else "entities"] = entities
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
        if isinstance(reply_to, Sent):
            msg["reply_to_message"] = self._message_json(reply_to)
        elif reply_to is not None:
            msg["reply_to_message"] = {"message_id": reply_to, "date": int(time.time()),
                                       "chat": chat, "from": user}
        if document is not None:
            name, data = document
            file_id = f"file{len(self.files) + 1}"
            self.files[file_id] = (f"documents/{file_id}_{name}", data)
            msg["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}",
                               "file_name": name, "mime_type": "text/csv",
                               "file_size": len(data)}
        return self.push({"edited_message" if edited else "message": msg})

    def callback(self, chat_id: int, user_id: int, on: Sent, data: str) -> int:
        """A member clicks a button (its callback_data) under the bot's message `on`."""
        user = self._users.get(user_id) or self.user(user_id)
        query = {"id": f"cq{next(self._message_ids)}", "from": user, "chat_instance": "ci",
                 "data": data, "message": self._message_json(on)}
        return self.push({"callback_query": query})

    def migrate(self, old_chat: int, new_chat: int, user_id: int) -> int:
        user = self._users.get(user_id) or self.user(user_id)
        chat = {"id": old_chat, "type": "group", "title": "old group"}
        self.group(new_chat)
        return self.push({"message": {"message_id": next(self._message_ids),
                                      "date": int(time.time()), "chat": chat, "from": user,
                                      "migrate_to_chat_id": new_chat}})

    def push(self, update: dict[str, Any]) -> int:
        update = {"update_id": next(self._update_ids), **update}
        if self.webhook_url:
            asyncio.get_running_loop().create_task(self._deliver(update))
        else:
            self.updates.append(update)
            self._wake()
        return int(update["update_id"])

    def fail(self, method: str, code: int = 500, description: str = "Internal Server Error",
             times: int = 1, retry_after: int | None = None,
             migrate_to: int | None = None, after: int = 0) -> None:
        """The next `times` calls of `method` (after `after` more that succeed) fail with this
        error (`migrate_to`: the group became the supergroup with this id)."""
        self._faults[method].extend([None] * after)
        for _ in range(times):
            self._faults[method].append(Fault(code, description, retry_after, migrate_to))

    def slow_next(self, seconds: float, times: int = 1, after: int = 0) -> None:
        """The next `times` sending calls (after `after` more that are not slowed) take
        `seconds` on the way in: Telegram handles them (flood windows, posting) and answers
        only then, as over a slow network — even when the bot has gone meanwhile."""
        self._latency.extend([None] * after + [seconds] * times)

    # Control: reading what the bot did

    def sent_to(self, chat_id: int | str) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    def wait_for(self, predicate: Callable[[], bool],
                 timeout: float = 10.0) -> Coroutine[Any, Any, None]:
        """`await api.wait_for(predicate)`: until `predicate()` holds (re-checked after every
        bot call); fails the test after `timeout` seconds."""
        return self._wait_for(predicate, timeout)

    async def _wait_for(self, predicate: Callable[[], bool], within_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while not predicate():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"timed out; the bot sent {[s.text for s in self.sent]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass

    # The Bot API

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = await _params(request)
            delay = self._latency.popleft() if method in _SEND_METHODS and self._latency \
                else None
            if delay is not None:
                self.on_the_way += 1
                try:
                    await asyncio.sleep(delay)
                finally:
                    self.on_the_way -= 1
            self.calls[method] += 1
            fault = self._faults[method].popleft() if self._faults[method] else None
            if fault is not None:
                raise ApiError(fault.code, fault.description, fault.retry_after,
                               fault.migrate_to)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = await handler(params)
            return web.json_response({"ok": True, "result": result})
        except ApiError as exc:
            self.rejected[exc.code] += 1
            body: dict[str, Any] = {"ok": False, "error_code": exc.code,
                                    "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            if exc.migrate_to is not None:
                body["parameters"] = {"migrate_to_chat_id": exc.migrate_to}
            return web.json_response(body, status=exc.code)
        finally:
            self._changed.set()

    async def _m_getMe(self, p: dict[str, Any]) -> dict[str, Any]:
        return {**self._bot_user(), "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook_url = None
        return True

    async def _m_setWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook_url = p["url"]
        self.webhook_secret = p.get("secret_token")
        self._note_allowed(p)
        return True

    async def _m_getUpdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        self._note_allowed(p)
        offset = int(p.get("offset") or 0)
        if offset > self.confirmed:
            self.confirmed = offset
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        limit = int(p.get("limit") or 100)
        deadline = asyncio.get_running_loop().time() + float(p.get("timeout") or 0)
        while True:
            arrived = self._arrived
            if self.updates:
                return self.updates[:limit]
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self._closing:
                return []
            try:
                await asyncio.wait_for(arrived.wait(), remaining)
            except TimeoutError:
                return []

    async def _m_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_for_send(p)
        text, entities = parse_text(str(p.get("text", "")), p.get("parse_mode"))
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        self._flood(chat_id)
        return self._record(Sent("sendMessage", chat_id, next(self._message_ids), text,
                                 str(p["text"]), entities=entities, **self._common(p)))

    async def _m_sendDocument(self, p: dict[str, Any]) -> dict[str, Any]:
        return await self._send_file("sendDocument", "document", p)

    async def _m_sendPhoto(self, p: dict[str, Any]) -> dict[str, Any]:
        return await self._send_file("sendPhoto", "photo", p)

    async def _m_editMessageText(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_for_send(p)
        text = visible_text(str(p.get("text", "")), p.get("parse_mode"))
        if len(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        for sent in self.sent:
            if sent.chat_id == chat_id and sent.message_id == p.get("message_id"):
                self._flood(chat_id)
                sent.edits.append(sent.text)
                sent.text, sent.raw = text, str(p["text"])
                return self._message_json(sent)
        raise ApiError(400, "Bad Request: message to edit not found")

    async def _m_sendChatAction(self, p: dict[str, Any]) -> bool:
        self.chat_actions.append((self._chat_for_send(p), str(p.get("action"))))
        return True

    async def _m_setMyCommands(self, p: dict[str, Any]) -> bool:
        scope = (p.get("scope") or {}).get("type", "default")
        commands = p.get("commands") or []
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command["command"]):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"]) <= 256:
                raise ApiError(400, "Bad Request: command description is too long")
        self.commands[scope] = commands
        return True

    async def _m_getChatAdministrators(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        chat_id = int(p["chat_id"])
        out = []
        for user_id, status in self.admins.get(chat_id, {}).items():
            user = self._users.get(user_id) or self.user(user_id)
            if status == "creator":
                out.append({"status": "creator", "user": user, "is_anonymous": False})
            else:
                flags = ("can_be_edited", "is_anonymous", "can_manage_chat",
                         "can_delete_messages", "can_manage_video_chats",
                         "can_restrict_members", "can_promote_members", "can_change_info",
                         "can_invite_users", "can_post_stories", "can_edit_stories",
                         "can_delete_stories")
                out.append({"status": "administrator", "user": user,
                            **{f: f == "can_manage_chat" for f in flags}})
        return out

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        self.callback_answers.append(p)
        return True

    async def _m_getFile(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = str(p["file_id"])
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data),
                "file_path": path}

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        for path, data in self.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=data)
        return web.Response(status=404)

    # Control over HTTP, for a bot process that is not the test's own

    async def _control_update(self, request: web.Request) -> web.Response:
        body = await request.json()
        body.pop("update_id", None)
        return web.json_response({"update_id": self.push(body)})

    async def _control_sent(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"method": s.method, "chat_id": s.chat_id, "message_id": s.message_id,
             "text": s.text, "thread_id": s.thread_id, "reply_to": s.reply_to}
            for s in self.sent
        ])

    # Internals

    async def _send_file(self, method: str, kind: str, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_for_send(p)
        upload = p.get(kind)
        if not isinstance(upload, web.FileField):
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        self._flood(chat_id)
        data = upload.file.read()
        return self._record(Sent(method, chat_id, next(self._message_ids),
                                 str(p.get("caption", "")), file_name=upload.filename,
                                 file_data=data, **self._common(p)))

    def _chat_for_send(self, p: dict[str, Any]) -> int | str:
        raw = p.get("chat_id")
        if raw is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat_id: int | str = int(raw) if str(raw).lstrip("-").isdigit() else str(raw)
        if isinstance(chat_id, int) and chat_id > 0 and chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if isinstance(chat_id, int) and chat_id > 0 and chat_id not in self.dm_open:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat_id

    def _common(self, p: dict[str, Any]) -> dict[str, Any]:
        reply = p.get("reply_parameters") or {}
        return {"thread_id": p.get("message_thread_id"),
                "reply_to": reply.get("message_id", p.get("reply_to_message_id")),
                "reply_markup": p.get("reply_markup")}

    def _flood(self, chat_id: int | str) -> None:
        now = time.monotonic()
        checks: list[tuple[deque[float], tuple[int, float]]] = []
        if self.global_limit:
            checks.append((self._all_sends, self.global_limit))
        if self.chat_limit and (isinstance(chat_id, str) or chat_id < 0):
            checks.append((self._sends[chat_id], self.chat_limit))
        for window, (count, period) in checks:
            while window and window[0] <= now - period:
                window.popleft()
            if len(window) >= count:
                raise ApiError(429, f"Too Many Requests: retry after {self.retry_after}",
                               retry_after=self.retry_after)
        for window, _ in checks:
            window.append(now)

    def _record(self, sent: Sent) -> dict[str, Any]:
        self.sent.append(sent)
        return self._message_json(sent)

    def _message_json(self, sent: Sent) -> dict[str, Any]:
        chat = self._chats.get(sent.chat_id) if isinstance(sent.chat_id, int) else None
        msg: dict[str, Any] = {
            "message_id": sent.message_id, "date": int(time.time()),
            "chat": chat or {"id": sent.chat_id, "type": "private"}, "from": self._bot_user(),
        }
        if sent.method == "sendMessage":
            msg["text"] = sent.text
        elif sent.method == "sendPhoto":
            msg["photo"] = [{"file_id": f"p{sent.message_id}", "file_unique_id": "p",
                             "width": 1, "height": 1}]
        else:
            msg["document"] = {"file_id": f"d{sent.message_id}", "file_unique_id": "d",
                               "file_name": sent.file_name}
        if sent.thread_id is not None:
            msg["message_thread_id"] = sent.thread_id
            msg["is_topic_message"] = True
        if sent.reply_markup:
            msg["reply_markup"] = sent.reply_markup
        return msg

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Shopkeep",
                "username": self.username}

    def _wake(self) -> None:
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    async def _deliver(self, update: dict[str, Any]) -> None:
        """Webhook mode: POST the update like Telegram does, retrying until it is taken."""
        assert self.webhook_url is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret or ""}
        async with ClientSession() as session:
            for _ in range(50):
                try:
                    async with session.post(self.webhook_url, json=update,
                                            headers=headers) as resp:
                        if resp.status == 200:
                            return
                except OSError:
                    pass
                await asyncio.sleep(0.1)


async def _params(request: web.Request) -> dict[str, Any]:
    """PTB posts form fields (JSON-encoded unless plain strings) or multipart with files."""
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    params: dict[str, Any] = dict(request.query)
    for key, value in form.items():
        if isinstance(value, str) and key in _JSON_FIELDS:
            params[key] = json.loads(value)
        elif isinstance(value, str) and key in _INT_FIELDS:
            params[key] = int(value)
        else:
            params[key] = value
    return params


def _entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram would attach: bot commands at the start and @mentions."""
    out = []
    command = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
    if command:
        out.append({"type": "bot_command", "offset": 0, "length": command.end()})
    for match in re.finditer(r"@[A-Za-z0-9_]{5,32}", text):
        if command and match.start() < command.end():
            continue
        out.append({"type": "mention", "offset": match.start(), "length": len(match.group())})
    return out
