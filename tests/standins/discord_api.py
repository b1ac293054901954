"""A local Discord for tests: REST under /api/v10 and a WebSocket gateway on 127.0.0.1 that the
real discord.py talks to, with a Python control API to inject events and faults and to read
what the bot sent, and when.

It keeps the rules the adapter must live by: 2000-character messages, nonce de-duplication
(`enforce_nonce`, for a few minutes only; a nonce is never shown again, not even in the channel
history), channel history read back newest first (403 Missing Access without the right), DMs
refused with 403 / 50007 for a member who takes none, the 3-second interaction
acknowledgement window, 429s with `retry_after` and a `Via` header, and a gateway that
buffers events while the bot is away and replays them on RESUME.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.standins.discord_members import MembersStandIn

DISCORD_EPOCH_MS = 1420070400000
PERM_MANAGE_MESSAGES = 1 << 13
PERM_MANAGE_GUILD = 1 << 5
PERM_ADMINISTRATOR = 1 << 3
PERM_EVERYONE = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 6) | (1 << 31)  # view/send/history
ACK_WINDOW_S = 3.0
EPHEMERAL = 1 << 6
_ids = itertools.count(1)


def snowflake() -> str:
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (next(_ids) & 0x3FFFFF))


def _iso(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts or time.time()))


@dataclass
class Sent:
    """One thing the bot posted: a channel message, an interaction response or a follow-up."""

    kind: str  # "message" | "response" | "followup" | "edit"
    id: str
    channel_id: str
    content: str
    at: float
    nonce: str | None = None
    flags: int = 0
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    interaction_id: str | None = None
    callback_type: int | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the request body as sent

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)


@dataclass
class Interaction:
    id: str
    token: str
    created: float
    channel_id: str
    acked_type: int | None = None
    ack_at: float | None = None
    ack_flags: int = 0
    original: str = "pending"  # "pending" → "replaced" (first follow-up) or "deleted"


@dataclass
class Session:
    id: str
    shard: tuple[int, int]
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None


@dataclass
class Fault:
    method: str
    path_prefix: str
    remaining: int
    kind: str  # "429" | "502-after-create" | "slow-after-create"
    retry_after: float = 0.5  # 429: what Discord asks; slow-after-create: the answer's delay
    skip: int = 0  # matching requests let through untouched first


@dataclass
class OtherGuild:
    """Another server the bot was added to, with its own owner, roles and channels (a
    stranger's server, in the tenancy tests)."""

    id: str
    name: str
    owner: str
    general: str
    role_mod: str  # Manage Server, like the main guild's "Moderators"
    member_roles: dict[str, list[str]] = field(default_factory=dict)


class DiscordStandIn:
    """Users 1 (owner), 2 (admin), 3 (moderator), 4 and 5 (members), 6 (member with the
    permission-less role "Helpers") in guild `guild_id`, channels `general` and `help`; the
    bot is user `bot_id`."""

    def __init__(self, token: str = "test-token", heartbeat_interval_ms: int = 41250) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.bot_id = snowflake()
        self.application_id = self.bot_id
        self.guild_id = snowflake()
        self.general = snowflake()
        self.help = snowflake()
        self.thread = snowflake()  # a thread in #help
        self.role_mod, self.role_admin, self.role_helper = snowflake(), snowflake(), snowflake()
        self.users: dict[str, dict[str, Any]] = {
            self.bot_id: _user(self.bot_id, "shopkeep", bot=True)}
        self.member_roles: dict[str, list[str]] = {}
        for uid, name, roles in (("1", "olivia", []), ("2", "ada", [self.role_admin]),
                                 ("3", "mo", [self.role_mod]), ("4", "mia", []),
                                 ("5", "max", []), ("6", "hana", [self.role_helper])):
            self.users[uid] = _user(uid, name)
            self.member_roles[uid] = roles
        self.channels: dict[str, dict[str, Any]] = {
            cid: {"id": cid, "type": 0, "guild_id": self.guild_id, "name": name, "position": i,
                  "permission_overwrites": [], "nsfw": False, "parent_id": None,
                  "rate_limit_per_user": 0, "topic": None, "last_message_id": None}
            for i, (cid, name) in enumerate(((self.general, "general"), (self.help, "help")))}
        self.others: dict[str, OtherGuild] = {}
        self.sent: list[Sent] = []
        self.requests: list[tuple[str, str, int, float]] = []
        self.typing: list[tuple[str, float]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self.ack_heartbeats = True  # False: a connection that went quiet
        self.interactions: dict[str, Interaction] = {}
        self.sessions: dict[str, Session] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self._nonces: dict[tuple[str, str], tuple[str, float]] = {}
        # Discord de-duplicates an enforced nonce "in the past few minutes" only.
        self.nonce_window_s = 300.0
        self.holding = 0  # answers held back by slow_after_create
        self.history_denied: set[str] = set()  # channels whose history the bot may not read
        self.dm_refused: set[str] = set()  # members who take no DMs (or blocked the bot)
        self._faults: list[Fault] = []
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.base = ""
        from tests.standins.discord_members import MembersStandIn  # it imports this module

        self.members: MembersStandIn = MembersStandIn(self)  # joins, leaves, invites

    # Lifecycle and addresses

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        app.router.add_get("/attachments/{name}", self._attachment)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for session in self.sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.base.removeprefix('http://')}/gateway"

    # Reading what the bot did

    def messages_in(self, channel_id: str) -> list[Sent]:
        return [s for s in self.sent if s.channel_id == channel_id and s.kind == "message"]

    def for_interaction(self, interaction_id: str) -> list[Sent]:
        return [s for s in self.sent if s.interaction_id == interaction_id]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until `predicate()` holds; fails the test with what was sent if it never does.
        Polls, so a predicate may look at anything (the stand-in, the core, a spy)."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within} s; the bot sent {self.sent!r}")
            await asyncio.sleep(0.02)

    # Faults

    def rate_limit(self, method: str, path_prefix: str, times: int = 1,
                   retry_after: float = 0.5) -> None:
        """The next `times` matching requests get a real 429."""
        self._faults.append(Fault(method, path_prefix, times, "429", retry_after))

    def fail_after_create(self, method: str, path_prefix: str, times: int = 1) -> None:
        """Create the message but answer 502, as a proxy losing the response would."""
        self._faults.append(Fault(method, path_prefix, times, "502-after-create"))

    def slow_after_create(self, method: str, path_prefix: str, seconds: float,
                          times: int = 1, after: int = 0) -> None:
        """After `after` matching requests, create the message, then take `seconds` to answer
        (a slow way back): a bot killed meanwhile has posted without learning the message's
        id. `holding` counts the answers held."""
        self._faults.append(Fault(method, path_prefix, times, "slow-after-create", seconds,
                                  skip=after))

    async def close_gateway(self, code: int = 4000) -> None:
        """Drop every gateway connection with a resumable close code."""
        for session in self.sessions.values():
            ws, session.ws = session.ws, None
            if ws is not None and not ws.closed:
                await ws.close(code=code, message=b"stand-in closed the connection")

    async def send_op(self, op: int, d: Any = None) -> None:
        """Send a raw opcode (7 RECONNECT, 9 INVALID_SESSION) on every live connection."""
        for session in self.sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.send_json({"op": op, "d": d, "s": None, "t": None})

    async def add_guild(self, owner: str, members: dict[str, str] | None = None,
                        name: str = "Another Server") -> OtherGuild:
        """The bot is added to another server, owned by user `owner` (created if new);
        `members` maps more user ids to "mod" (Manage Server) or "member". Sends GUILD_CREATE
        to a connected bot, as Discord does when it joins a guild."""
        guild = OtherGuild(snowflake(), name, owner, snowflake(), snowflake())
        for uid, role in {owner: "member", **(members or {})}.items():
            self.users.setdefault(uid, _user(uid, f"user{uid}"))
            guild.member_roles[uid] = [guild.role_mod] if role == "mod" else []
        self.channels[guild.general] = {
            "id": guild.general, "type": 0, "guild_id": guild.id, "name": "general",
            "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None,
            "rate_limit_per_user": 0, "topic": None, "last_message_id": None}
        self.others[guild.id] = guild
        joined = self._other_guild(guild)
        del joined["unavailable"]  # a join, unlike a guild of READY becoming available
        await self.dispatch("GUILD_CREATE", joined, guild.id)
        return guild

    # Injecting events

    async def message(self, author: str, content: str, channel_id: str | None = None, *,
                      reply_to: str | None = None, dm: bool = False,
                      attachments: tuple[str, ...] = ()) -> str:
        """A member writes `content` (with files named `attachments`); returns the id."""
        channel_id = channel_id or self.general
        if dm:
            channel_id = self._dm_channel(author)["id"]
        msg = self._message(author, content, channel_id, guild=not dm, reply_to=reply_to,
                            attachments=[self._attachment_payload(f) for f in attachments])
        await self.dispatch("MESSAGE_CREATE", msg)
        return str(msg["id"])

    async def redeliver(self, message_id: str) -> None:
        """Dispatch a message event again, as an at-least-once gateway may (a second process
        on the same shard, a replay after a session hand-over)."""
        await self.dispatch("MESSAGE_CREATE", self.messages[message_id])

    async def slash(self, user: str, name: str, options: dict[str, Any] | None = None,
                    channel_id: str | None = None, focused: str | None = None) -> str:
        """A member runs `/name` with `options`, built against the commands the bot synced
        (an option it did not declare fails here, as Discord would not offer it). With
        `focused`, the member is still typing that option: an autocomplete request."""
        channel_id = channel_id or self.general
        guild_id = self._guild_of(channel_id) or self.guild_id
        words = name.split()
        synced = {c["name"]: c for c in self.commands.get(guild_id, [])}
        if words[0] not in synced:
            raise AssertionError(f"/{words[0]} was not synced; synced: {sorted(synced)}")
        command = synced[words[0]]
        declared = command.get("options") or []
        if len(words) == 2:
            sub = next((o for o in declared if o["name"] == words[1] and o["type"] == 1), None)
            if sub is None:
                raise AssertionError(f"/{name} was not synced")
            declared = sub.get("options") or []
        types = {o["name"]: o["type"] for o in declared}
        resolved: dict[str, Any] = {}
        opts = []
        for key, value in (options or {}).items():
            if key not in types:
                raise AssertionError(f"/{name} declares no option {key!r}: {sorted(types)}")
            if types[key] == 11:
                attachment = self._attachment_payload(value)
                resolved.setdefault("attachments", {})[attachment["id"]] = attachment
                value = attachment["id"]
            if types[key] == 6:
                resolved.setdefault("users", {})[value] = self.users[value]
                resolved.setdefault("members", {})[value] = self._member(value, False,
                                                                         guild_id)
            opts.append({"name": key, "type": types[key], "value": value,
                         **({"focused": True} if key == focused else {})})
        if len(words) == 2:
            opts = [{"name": words[1], "type": 1, "options": opts}]
        data = {"id": command["id"], "name": words[0], "type": 1, "options": opts,
                "guild_id": guild_id, "resolved": resolved}
        return await self._interaction(4 if focused else 2, user, channel_id, data)

    async def click(self, user: str, custom_id: str, channel_id: str | None = None,
                    message_id: str | None = None) -> str:
        """A member clicks a button the bot sent."""
        channel_id = channel_id or self.general
        data = {"custom_id": custom_id, "component_type": 2}
        message = self.messages.get(message_id or "") if message_id else None
        return await self._interaction(3, user, channel_id, data, message)

    async def dispatch(self, event: str, data: dict[str, Any],
                       guild_id: str | None = None) -> None:
        """Send a DISPATCH to the shard that owns `guild_id`, or buffer it for the RESUME."""
        gid = int(guild_id or data.get("guild_id") or 0)
        async with self._lock:
            for session in self.sessions.values():
                shard, count = session.shard
                if (gid >> 22) % count != shard:
                    continue
                session.seq += 1
                payload = {"op": 0, "t": event, "s": session.seq, "d": data}
                session.buffer.append(payload)
                if session.ws is not None and not session.ws.closed:
                    await session.ws.send_str(json.dumps(payload))

    async def _interaction(self, kind: int, user: str, channel_id: str,
                           data: dict[str, Any], message: dict[str, Any] | None = None) -> str:
        iid = snowflake()
        token = f"tok-{uuid.uuid4().hex}"
        self.interactions[token] = Interaction(iid, token, time.monotonic(), channel_id)
        guild_id = self._guild_of(channel_id) or self.guild_id
        payload: dict[str, Any] = {
            "id": iid, "application_id": self.application_id, "type": kind, "data": data,
            "guild_id": guild_id, "channel_id": channel_id,
            "channel": self.channels.get(channel_id) or self._thread(),
            "member": self._member(user, True, guild_id),
            "token": token, "version": 1, "app_permissions": str(PERM_EVERYONE),
            "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": guild_id}, "context": 0,
            "attachment_size_limit": 8 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid

    # Payloads

    def _guild_of(self, channel_id: str) -> str | None:
        if channel_id == self.thread:
            return self.guild_id
        channel = self.channels.get(channel_id) or {}
        return channel.get("guild_id")

    def _permissions(self, user: str, guild_id: str | None = None) -> int:
        other = self.others.get(guild_id or "")
        if other is not None:
            if user == other.owner:
                return (1 << 41) - 1
            roles = other.member_roles.get(user, [])
            return PERM_EVERYONE | (PERM_MANAGE_GUILD if other.role_mod in roles else 0)
        if user == "1":
            return (1 << 41) - 1
        perms = PERM_EVERYONE
        for role in self.member_roles.get(user, []):
            perms |= {self.role_mod: PERM_MANAGE_GUILD | PERM_MANAGE_MESSAGES,
                      self.role_admin: PERM_ADMINISTRATOR, self.role_helper: 0}[role]
        return perms

    def _member(self, user: str, with_user: bool,
                guild_id: str | None = None) -> dict[str, Any]:
        other = self.others.get(guild_id or "")
        roles = other.member_roles.get(user, []) if other else self.member_roles.get(user, [])
        member: dict[str, Any] = {
            "roles": roles, "joined_at": _iso(), "deaf": False,
            "mute": False, "nick": None, "flags": 0, "pending": False, "avatar": None,
            "permissions": str(self._permissions(user, guild_id))}
        if with_user:
            member["user"] = self.users[user]
        return member

    def _guild(self) -> dict[str, Any]:
        roles = [_role(self.guild_id, "@everyone", PERM_EVERYONE, 0),
                 _role(self.role_mod, "Moderators", PERM_MANAGE_GUILD | PERM_MANAGE_MESSAGES, 1),
                 _role(self.role_admin, "Admins", PERM_ADMINISTRATOR, 2),
                 _role(self.role_helper, "Helpers", 0, 3)]
        members = [self._member(uid, True) for uid in self.member_roles]
        return self._guild_payload(self.guild_id, "Demo Guild", "1", roles, members,
                                   [c for c in self.channels.values()
                                    if c.get("guild_id") == self.guild_id], [self._thread()])

    def _other_guild(self, guild: OtherGuild) -> dict[str, Any]:
        roles = [_role(guild.id, "@everyone", PERM_EVERYONE, 0),
                 _role(guild.role_mod, "Staff", PERM_MANAGE_GUILD, 1)]
        members = [self._member(uid, True, guild.id) for uid in guild.member_roles]
        return self._guild_payload(guild.id, guild.name, guild.owner, roles, members,
                                   [self.channels[guild.general]], [])

    def _guild_payload(self, guild_id: str, name: str, owner: str, roles: list[dict[str, Any]],
                       members: list[dict[str, Any]], channels: list[dict[str, Any]],
                       threads: list[dict[str, Any]]) -> dict[str, Any]:
        members = [*members, {"user": self.users[self.bot_id], "roles": [], "joined_at": _iso(),
                              "deaf": False, "mute": False, "flags": 0}]
        return {
            "id": guild_id, "name": name, "owner_id": owner, "icon": None,
            "splash": None, "discovery_splash": None, "banner": None, "description": None,
            "features": [], "roles": roles, "emojis": [], "stickers": [],
            "channels": channels, "threads": threads, "members": members,
            "member_count": len(members), "voice_states": [], "presences": [],
            "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
            "large": False, "unavailable": False, "joined_at": _iso(), "mfa_level": 0,
            "verification_level": 0, "explicit_content_filter": 0, "nsfw_level": 0,
            "default_message_notifications": 0, "system_channel_flags": 0,
            "premium_tier": 0, "premium_subscription_count": 0, "preferred_locale": "en-US",
            "afk_timeout": 300, "afk_channel_id": None, "system_channel_id": None,
            "rules_channel_id": None, "public_updates_channel_id": None,
            "vanity_url_code": None, "max_video_channel_users": 25, "application_id": None,
        }

    def _dm_channel(self, user: str) -> dict[str, Any]:
        """The DM channel between the bot and `user` (kept under the key `dm<user>`)."""
        return self.channels.setdefault(f"dm{user}", {
            "id": snowflake(), "type": 1, "last_message_id": None,
            "recipients": [self.users[user]]})

    def _thread(self) -> dict[str, Any]:
        return {"id": self.thread, "type": 11, "guild_id": self.guild_id, "parent_id": self.help,
                "name": "tent sizes", "owner_id": "4", "last_message_id": None,
                "rate_limit_per_user": 0, "message_count": 1, "member_count": 2, "flags": 0,
                "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                    "archive_timestamp": _iso(), "locked": False}}

    def _attachment_payload(self, filename: str) -> dict[str, Any]:
        aid = snowflake()
        data = self.attachment_bytes(filename)
        return {"id": aid, "filename": filename, "size": len(data),
                "url": f"{self.base}/attachments/{filename}",
                "proxy_url": f"{self.base}/attachments/{filename}",
                "content_type": "text/csv" if filename.endswith(".csv") else "text/plain"}

    @staticmethod
    def attachment_bytes(filename: str) -> bytes:
        return f"sku,name\nTENT-2P,Trailhead 2P Tent\n# {filename}\n".encode()

    def _message(self, author: str, content: str, channel_id: str, *, guild: bool,
                 reply_to: str | None = None, **extra: Any) -> dict[str, Any]:
        mentions = [self.users[uid] for uid in self.users if f"<@{uid}>" in content]
        msg: dict[str, Any] = {
            "id": snowflake(), "channel_id": channel_id, "author": self.users[author],
            "content": content, "timestamp": _iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": mentions, "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": False, "type": 19 if reply_to else 0,
            "flags": 0, "components": [],
        }
        if guild:
            msg["guild_id"] = self._guild_of(channel_id) or self.guild_id
            if author != self.bot_id:
                msg["member"] = self._member(author, False, msg["guild_id"])
        if reply_to:
            msg["message_reference"] = {"message_id": reply_to, "channel_id": channel_id,
                                        "type": 0}
            msg["referenced_message"] = self.messages.get(reply_to)
        msg.update(extra)
        self.messages[msg["id"]] = msg
        return msg

    # Gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                            "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            op, d = payload.get("op"), payload.get("d")
            if op == 1:
                self.heartbeats += 1
                if self.ack_heartbeats:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                await self._identify(ws, d)
            elif op == 6:
                await self._resume(ws, d)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> None:
        if d.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.members.refuses_identify(d):
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self.identifies += 1
        shard = tuple(d.get("shard") or (0, 1))
        session = Session(uuid.uuid4().hex, (int(shard[0]), int(shard[1])), ws=ws)
        self.sessions = {k: s for k, s in self.sessions.items() if s.shard != session.shard}
        self.sessions[session.id] = session
        ready = {"v": 10, "user": self.users[self.bot_id], "session_id": session.id,
                 "resume_gateway_url": self.gateway_url, "shard": list(session.shard),
                 "guilds": [{"id": g, "unavailable": True} for g in [self.guild_id,
                                                                      *self.others]],
                 "application": {"id": self.application_id, "flags": 0},
                 "private_channels": [], "relationships": [], "presences": [],
                 "geo_ordered_rtc_regions": [], "session_type": "normal", "auth": {},
                 "user_settings": {}}
        async with self._lock:
            guilds = [("GUILD_CREATE", self._guild()),
                      *(("GUILD_CREATE", self._other_guild(g)) for g in self.others.values())]
            for event, data in (("READY", ready), *guilds):
                if event == "GUILD_CREATE" and (int(data["id"]) >> 22) % session.shard[1] \
                        != session.shard[0]:
                    continue
                session.seq += 1
                payload = {"op": 0, "t": event, "s": session.seq, "d": data}
                session.buffer.append(payload)
                await ws.send_str(json.dumps(payload))

    async def _resume(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> None:
        session = self.sessions.get(str(d.get("session_id")))
        if session is None or d.get("token") != self.token:
            await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
            return
        self.resumes += 1
        async with self._lock:
            session.ws = ws
            for payload in session.buffer:
                if payload["s"] > int(d.get("seq") or 0):
                    await ws.send_str(json.dumps(payload))
            session.seq += 1
            await ws.send_json({"op": 0, "t": "RESUMED", "s": session.seq, "d": {}})

    # REST

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path.removeprefix("/api/v10")
        fault = self._fault(request.method, path, "429")
        if fault is not None:
            response: web.StreamResponse = _json(
                {"message": "You are being rate limited.", "retry_after": fault.retry_after,
                 "global": False}, status=429,
                headers={"Via": "1.1 google", "Retry-After": str(max(1, int(fault.retry_after))),
                         "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                         "X-RateLimit-Reset-After": str(fault.retry_after),
                         "X-RateLimit-Bucket": f"bucket-{abs(hash(path)) % 9999}",
                         "X-RateLimit-Scope": "user"})
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
            response.headers.setdefault("X-RateLimit-Limit", "5")
            response.headers.setdefault("X-RateLimit-Remaining", "4")
            response.headers.setdefault("X-RateLimit-Reset-After", "1.0")
            response.headers.setdefault("X-RateLimit-Bucket", f"bucket-{abs(hash(path)) % 9999}")
        self.requests.append((request.method, path, response.status, time.monotonic()))
        return response

    def _fault(self, method: str, path: str, kind: str) -> Fault | None:
        for fault in self._faults:
            if (fault.kind == kind and fault.remaining > 0 and fault.method == method
                    and path.startswith(fault.path_prefix)):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.remaining -= 1
                return fault
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        parts = path.strip("/").split("/")
        method = request.method
        open_route = parts[0] in ("interactions", "webhooks")
        if not open_route and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        if method == "GET" and path == "/users/@me":
            return _json(self.users[self.bot_id])
        if method == "GET" and path == "/oauth2/applications/@me":
            return _json(self._app_info())
        if method == "GET" and path in ("/gateway/bot", "/gateway"):
            return _json({"url": self.gateway_url, "shards": 1,
                                      "session_start_limit": {"total": 1000, "remaining": 999,
                                                              "reset_after": 0,
                                                              "max_concurrency": 1}})
        if parts[0] == "applications" and parts[-1] == "commands":
            return await self._commands(request, parts)
        if parts[0] == "channels" and len(parts) == 3 and parts[2] == "messages" \
                and method == "POST":
            return await self._create_message(request, parts[1], path)
        if parts[0] == "channels" and len(parts) == 3 and parts[2] == "messages" \
                and method == "GET":
            return self._history(parts[1], request.query)
        if parts[0] == "channels" and len(parts) == 3 and parts[2] == "typing":
            self.typing.append((parts[1], time.monotonic()))
            return web.Response(status=204)
        if parts[0] == "channels" and len(parts) == 2 and parts[1] in self.channels:
            return _json(self.channels[parts[1]])
        if method == "POST" and path == "/users/@me/channels":
            return _json(self._dm_channel(str((await request.json())["recipient_id"])))
        if parts[0] == "users" and len(parts) == 2 and parts[1] in self.users:
            return _json(self.users[parts[1]])
        if parts[0] == "interactions" and parts[-1] == "callback":
            return await self._callback(request, parts[2])
        if parts[0] == "webhooks" and len(parts) >= 3:
            return await self._webhook(request, parts[2], parts[3:])
        handled = await self.members.rest(request, parts)
        if handled is not None:
            return handled
        return _json({"message": f"404: Not Found {method} {path}", "code": 0},
                                 status=404)

    def _history(self, channel_id: str, query: Any) -> web.Response:
        """GET /channels/{id}/messages: newest first, `before` / `after` / `limit` (1-100)."""
        if channel_id in self.history_denied:
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        limit = int(query.get("limit", 50))
        if not 1 <= limit <= 100:
            return _form_error("limit", "Must be between 1 and 100.")
        found = [m for m in self.messages.values() if m["channel_id"] == channel_id]
        if "after" in query:
            found = [m for m in found if int(m["id"]) > int(query["after"])]
            found = sorted(found, key=lambda m: int(m["id"]))[:limit]
        if "before" in query:
            found = [m for m in found if int(m["id"]) < int(query["before"])]
        found = sorted(found, key=lambda m: int(m["id"]), reverse=True)[:limit]
        return _json([{k: v for k, v in m.items() if k != "nonce"} for m in found])

    def _app_info(self) -> dict[str, Any]:
        return {"id": self.application_id, "name": "Shopkeep", "description": "", "icon": None,
                "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64,
                "owner": self.users["1"], "flags": 0, "summary": "", "team": None,
                "interactions_endpoint_url": None, "bot": self.users[self.bot_id]}

    async def _commands(self, request: web.Request, parts: list[str]) -> web.Response:
        scope = parts[3] if len(parts) == 5 and parts[2] == "guilds" else "global"
        if request.method == "PUT":
            body = await request.json()
            if len(body) > 100:
                return _form_error("commands", "Must be 100 or fewer in length.")
            stored = []
            for command in body:
                problem = _command_problem(command, depth=0)
                if problem is not None:
                    return _form_error(command.get("name", "?"), problem)
                stored.append({**command, "id": snowflake(), "application_id":
                               self.application_id, "version": snowflake(),
                               **({"guild_id": scope} if scope != "global" else {})})
            self.commands[scope] = stored
            return _json(stored)
        return _json(self.commands.get(scope, []))

    async def _payload(self, request: web.Request) -> tuple[dict[str, Any], list[str]]:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            files = [str(v.filename) for k, v in form.items() if k.startswith("files[")
                     and hasattr(v, "filename")]
            return json.loads(str(form["payload_json"])), files
        return await request.json(), []

    def _record(self, kind: str, channel_id: str, body: dict[str, Any], files: list[str],
                interaction: Interaction | None = None,
                callback_type: int | None = None) -> tuple[Sent, dict[str, Any]]:
        msg = self._message(self.bot_id, body.get("content") or "", channel_id,
                            guild=self._guild_of(channel_id) is not None,
                            embeds=body.get("embeds") or [],
                            components=body.get("components") or [],
                            flags=body.get("flags") or 0)
        sent = Sent(kind, msg["id"], channel_id, msg["content"], time.monotonic(),
                    nonce=body.get("nonce"), flags=msg["flags"], embeds=msg["embeds"],
                    components=msg["components"], files=files,
                    allowed_mentions=body.get("allowed_mentions"),
                    reference=body.get("message_reference"),
                    interaction_id=interaction.id if interaction else None,
                    callback_type=callback_type, data=body)
        self.sent.append(sent)
        return sent, msg

    async def _create_message(self, request: web.Request, channel_id: str,
                              path: str) -> web.Response:
        body, files = await self._payload(request)
        error = _check_content(body, files)
        if error is not None:
            return error
        recipient = next((str(c["recipients"][0]["id"]) for c in self.channels.values()
                          if c["id"] == channel_id and c.get("type") == 1), None)
        if recipient is not None and recipient in self.dm_refused:
            return _json({"message": "Cannot send messages to this user", "code": 50007},
                         status=403)
        nonce = body.get("nonce")
        seen = self._nonces.get((channel_id, str(nonce))) if nonce else None
        if seen and body.get("enforce_nonce") and \
                time.monotonic() - seen[1] < self.nonce_window_s:
            return _json(self.messages[seen[0]])
        _sent, msg = self._record("message", channel_id, body, files)
        if nonce:
            self._nonces[(channel_id, str(nonce))] = (msg["id"], time.monotonic())
        if self._fault("POST", path, "502-after-create") is not None:
            return _json({"message": "502: Bad Gateway"}, status=502)
        slow = self._fault("POST", path, "slow-after-create")
        if slow is not None:
            self.holding += 1
            await asyncio.sleep(slow.retry_after)
            self.holding -= 1
        return _json(msg)

    async def _callback(self, request: web.Request, token: str) -> web.Response:
        interaction = self.interactions.get(token)
        if interaction is None or time.monotonic() - interaction.created > ACK_WINDOW_S:
            return _json({"message": "Unknown interaction", "code": 10062},
                                     status=404)
        if interaction.acked_type is not None:
            return _json({"message": "Interaction has already been acknowledged.",
                                      "code": 40060}, status=400)
        body, files = await self._payload(request)
        kind, data = int(body["type"]), body.get("data") or {}
        if kind == 8 and "choices" not in data:
            return _form_error("choices", "This field is required")
        if kind == 4:
            error = _check_content(data, files)
            if error is not None:
                return error
        interaction.acked_type, interaction.ack_at = kind, time.monotonic()
        interaction.ack_flags = int(data.get("flags") or 0)
        _sent, msg = self._record("response", interaction.channel_id, data, files,
                                  interaction, kind)
        return _json({
            "interaction": {"id": interaction.id, "type": 2, "response_message_id": msg["id"],
                            "response_message_loading": kind == 5,
                            "response_message_ephemeral": bool(msg["flags"] & EPHEMERAL)},
            "resource": {"type": kind, "message": msg}})

    async def _webhook(self, request: web.Request, token: str,
                       rest: list[str]) -> web.StreamResponse:
        interaction = self.interactions.get(token)
        if interaction is None or interaction.acked_type is None:
            return _json({"message": "Unknown Webhook", "code": 10015}, status=404)
        if request.method == "DELETE":
            interaction.original = "deleted"
            return web.Response(status=204)
        body, files = await self._payload(request)
        if request.method == "POST" and interaction.acked_type == 5 \
                and interaction.original == "pending":
            # Discord: the first follow-up fills the "thinking" placeholder, whose
            # visibility was fixed when the interaction was deferred.
            interaction.original = "replaced"
            body["flags"] = (int(body.get("flags") or 0) & ~EPHEMERAL) | (
                interaction.ack_flags & EPHEMERAL)
        error = _check_content(body, files)
        if error is not None:
            return error
        kind = "edit" if request.method == "PATCH" else "followup"
        _sent, msg = self._record(kind, interaction.channel_id, body, files, interaction)
        return _json(msg)

    async def _attachment(self, request: web.Request) -> web.Response:
        return web.Response(body=self.attachment_bytes(request.match_info["name"]))


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Discord answers `application/json` with no charset; discord.py checks for exactly that."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={**(headers or {}), "Content-Type": "application/json"})


def _user(uid: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": uid, "username": name, "discriminator": "0", "global_name": name.title(),
            "avatar": None, "bot": bot, "public_flags": 0, "flags": 0}


def _role(rid: str, name: str, perms: int, position: int) -> dict[str, Any]:
    return {"id": rid, "name": name, "color": 0, "colors": {"primary_color": 0}, "hoist": False,
            "position": position, "permissions": str(perms), "managed": False,
            "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}


def _form_error(field_name: str, message: str) -> web.Response:
    return _json({"code": 50035, "message": "Invalid Form Body", "errors": {
        field_name: {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": message}]}}},
        status=400)


_NAME_RE = re.compile(r"^[-_a-z0-9]{1,32}$")


def _command_problem(item: dict[str, Any], depth: int) -> str | None:
    """What Discord would reject in a command or option (names, lengths, counts, order)."""
    name = str(item.get("name", ""))
    if not _NAME_RE.match(name):
        return f"name {name!r} must be 1-32 lowercase letters, digits, '-' or '_'"
    if not 1 <= len(item.get("description") or "") <= 100:
        return f"{name}: description must be 1-100 characters"
    options = item.get("options") or []
    if len(options) > 25:
        return f"{name}: at most 25 options"
    if len(item.get("choices") or []) > 25:
        return f"{name}: at most 25 choices"
    if item.get("choices") and item.get("autocomplete"):
        return f"{name}: choices and autocomplete exclude each other"
    seen_optional = False
    for option in options:
        if option.get("type") in (1, 2):
            if depth >= 2:
                return f"{name}: subcommands nest two levels at most"
        elif option.get("required"):
            if seen_optional:
                return f"{name}: required options must come before optional ones"
        else:
            seen_optional = True
        problem = _command_problem(option, depth + 1)
        if problem is not None:
            return problem
    if len({o.get("name") for o in options}) != len(options):
        return f"{name}: option names must be unique"
    return None


def _check_content(body: dict[str, Any], files: list[str]) -> web.Response | None:
    content = body.get("content") or ""
    if len(content) > 2000:
        return _form_error("content", "Must be 2000 or fewer in length.")
    if not content and not body.get("embeds") and not files and not body.get("components"):
        return _json({"message": "Cannot send an empty message", "code": 50006},
                                 status=400)
    return None
