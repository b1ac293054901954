"""The stand-in Discord's members and invites: GUILD_MEMBER_ADD / GUILD_MEMBER_REMOVE dispatch,
the invite endpoints (`GET /guilds/{id}/invites`, `POST /channels/{id}/invites`) with the
rights they need, and the privileged Server Members intent the gateway may refuse (4014)."""

from __future__ import annotations

import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.standins.discord_api import _iso, _json, _user

if TYPE_CHECKING:
    from tests.standins.discord_api import DiscordStandIn

GUILD_MEMBERS_INTENT = 1 << 1
MAX_INVITE_AGE_S = 604800  # Discord: 0 (never) to 7 days
MAX_INVITE_USES = 100


@dataclass
class InviteRecord:
    code: str
    channel_id: str
    inviter_id: str
    max_age: int = 0
    max_uses: int = 0
    temporary: bool = False
    uses: int = 0
    created: float = field(default_factory=time.time)


@dataclass
class InviteRequest:
    """One `POST /channels/{id}/invites` the bot made, as sent."""

    channel_id: str
    body: dict[str, Any]
    reason: str | None
    status: int


def _forbidden() -> web.Response:
    return _json({"message": "Missing Permissions", "code": 50013}, status=403)


class MembersStandIn:
    """Joins, leaves and invites of the stand-in's one guild. The switches are the bot's
    rights (`can_create_invites`: Create Invite; `can_manage_guild`: Manage Server, needed to
    list invites) and the portal's Server Members intent (`members_intent_enabled`)."""

    def __init__(self, api: DiscordStandIn) -> None:
        self.api = api
        self.invites: dict[str, InviteRecord] = {}
        self.invite_requests: list[InviteRequest] = []
        self.invite_lists = 0  # GET /guilds/{id}/invites answered with the list
        self.can_create_invites = True
        self.can_manage_guild = True
        self.members_intent_enabled = True
        self.identify_intents: list[int] = []

    # Gateway

    def refuses_identify(self, d: dict[str, Any]) -> bool:
        """Whether an IDENTIFY asks for the Server Members intent the portal has off."""
        intents = int(d.get("intents") or 0)
        self.identify_intents.append(intents)
        return bool(intents & GUILD_MEMBERS_INTENT) and not self.members_intent_enabled

    async def join(self, user_id: str, name: str = "", *, invite: str | None = None,
                   bot: bool = False) -> None:
        """`user_id` joins the guild, through `invite` (its use count goes up, as Discord
        counts it; an invite that reaches `max_uses` is deleted)."""
        if user_id not in self.api.users:
            self.api.users[user_id] = _user(user_id, name or f"user{user_id}", bot=bot)
        self.api.member_roles[user_id] = []
        if invite is not None:
            record = self.invites[invite]
            record.uses += 1
            if record.max_uses and record.uses >= record.max_uses:
                del self.invites[invite]
        await self.api.dispatch("GUILD_MEMBER_ADD", {
            "guild_id": self.api.guild_id, "user": self.api.users[user_id], "roles": [],
            "joined_at": _iso(), "deaf": False, "mute": False, "nick": None, "avatar": None,
            "flags": 0, "pending": False, "premium_since": None})

    async def leave(self, user_id: str) -> None:
        """`user_id` leaves (or is kicked from) the guild."""
        self.api.member_roles.pop(user_id, None)
        await self.api.dispatch("GUILD_MEMBER_REMOVE", {
            "guild_id": self.api.guild_id, "user": self.api.users[user_id]})

    def add_invite(self, inviter_id: str = "1", channel_id: str | None = None,
                   uses: int = 0, max_uses: int = 0) -> str:
        """An invite someone made by hand in the Discord client; returns its code."""
        code = secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")
        self.invites[code] = InviteRecord(code, channel_id or self.api.general, inviter_id,
                                          max_uses=max_uses, uses=uses)
        return code

    # REST

    async def rest(self, request: web.Request, parts: list[str]) -> web.Response | None:
        """Answer the invite routes; None for any other route."""
        if request.method == "GET" and len(parts) == 3 and parts[0] == "guilds" \
                and parts[2] == "invites":
            if parts[1] in self.api.others:  # the bot has no Manage Server there
                return _forbidden()
            if parts[1] != self.api.guild_id:
                return _json({"message": "Unknown Guild", "code": 10004}, status=404)
            if not self.can_manage_guild:
                return _forbidden()
            self.invite_lists += 1
            return _json([self._payload(r) for r in self.invites.values()])
        if request.method == "POST" and len(parts) == 3 and parts[0] == "channels" \
                and parts[2] == "invites":
            return await self._create(request, parts[1])
        return None

    async def _create(self, request: web.Request, channel_id: str) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        reason = request.headers.get("X-Audit-Log-Reason")
        reason = urllib.parse.unquote(reason) if reason is not None else None
        response = self._create_response(channel_id, body)
        self.invite_requests.append(InviteRequest(channel_id, body, reason, response.status))
        return response

    def _create_response(self, channel_id: str, body: dict[str, Any]) -> web.Response:
        channel = self.api.channels.get(channel_id)
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        if not channel.get("guild_id") or not self.can_create_invites:
            return _forbidden()
        max_age = int(body.get("max_age", 86400))  # Discord's defaults when left out
        max_uses = int(body.get("max_uses", 0))
        if not 0 <= max_age <= MAX_INVITE_AGE_S:
            return _json({"code": 50035, "message": "Invalid Form Body", "errors": {
                "max_age": {"_errors": [{"code": "NUMBER_TYPE_MAX", "message":
                                         "int value should be less than or equal to 604800."}]}}},
                         status=400)
        if not 0 <= max_uses <= MAX_INVITE_USES:
            return _json({"code": 50035, "message": "Invalid Form Body", "errors": {
                "max_uses": {"_errors": [{"code": "NUMBER_TYPE_MAX", "message":
                                          "int value should be less than or equal to 100."}]}}},
                         status=400)
        temporary = bool(body.get("temporary", False))
        if not body.get("unique", False):
            # Discord hands back a similar invite of the bot's own instead of a new one.
            for record in self.invites.values():
                if (record.channel_id, record.inviter_id, record.max_age, record.max_uses,
                        record.temporary) == (channel_id, self.api.bot_id, max_age, max_uses,
                                              temporary):
                    return _json(self._payload(record))
        code = secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")
        record = InviteRecord(code, channel_id, self.api.bot_id, max_age, max_uses, temporary)
        self.invites[code] = record
        return _json(self._payload(record))

    def _payload(self, record: InviteRecord) -> dict[str, Any]:
        """An invite object with its metadata, as Discord returns it."""
        channel = self.api.channels[record.channel_id]
        expires = None if record.max_age == 0 else _iso(record.created + record.max_age)
        return {
            "type": 0, "code": record.code, "inviter": self.api.users[record.inviter_id],
            "uses": record.uses, "max_uses": record.max_uses, "max_age": record.max_age,
            "temporary": record.temporary, "created_at": _iso(record.created),
            "expires_at": expires, "flags": 0,
            "guild": {"id": self.api.guild_id, "name": "Demo Guild", "splash": None,
                      "banner": None, "description": None, "icon": None, "features": [],
                      "verification_level": 0, "vanity_url_code": None, "nsfw_level": 0,
                      "premium_subscription_count": 0},
            "channel": {"id": channel["id"], "name": channel.get("name"),
                        "type": channel["type"]},
        }
