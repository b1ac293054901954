"""Dashboard sign-in without passwords: one-time links bound to a moderator, and sessions."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import cast

import redis.asyncio as aioredis

from bot.errors import UserFacingError
from bot.events import Privilege
from bot.storage.keys import Keys

# How long a used link is remembered, so that a second click is told "already used" rather
# than "expired" (both are refused).
USED_MEMORY_S = 86_400


class LinkRefused(UserFacingError):
    """A sign-in link that is unknown, expired or already used."""


@dataclass(frozen=True)
class Grant:
    """Who a link or a session speaks for: one moderator of one merchant, with the privilege
    the platform gave them when they asked for the link."""

    merchant: str
    member: str  # member key, e.g. discord:1234
    name: str
    privilege: int

    @property
    def role(self) -> str:
        return Privilege(self.privilege).name.lower()


@dataclass(frozen=True)
class Session:
    id: str
    grant: Grant
    csrf: str
    created: float
    expires: float


def secret_hash(secret: str) -> str:
    """Links and sessions are stored under a hash of their secret: a copy of Redis (a
    backup, a replica) holds nothing a browser could present."""
    return hashlib.sha256(secret.encode()).hexdigest()[:40]


class Access:
    """Issues and redeems sign-in links, and keeps sessions, for every merchant."""

    def __init__(self, redis: aioredis.Redis, link_ttl_s: int, session_ttl_s: int) -> None:
        self.redis = redis
        self.link_ttl_s = link_ttl_s
        self.session_ttl_s = session_ttl_s

    async def issue_link(self, grant: Grant) -> str:
        """A new one-time token for `grant`; it works once, within `link_ttl_s`.

        Raises:
            UserFacingError: the privilege is below a moderator's.
        """
        if grant.privilege < Privilege.MODERATOR:
            raise UserFacingError("The dashboard is for moderators only.")
        token = secrets.token_urlsafe(32)
        key = Keys(grant.merchant).dashboard_link(secret_hash(token))
        await self.redis.set(key, json.dumps({**asdict(grant), "issued": time.time()}),
                             ex=self.link_ttl_s)
        return token

    async def redeem_link(self, merchant: str, token: str) -> Grant:
        """Exchange a token for its grant; the token is gone afterwards (GETDEL, so two
        clicks at once cannot both succeed).

        Raises:
            LinkRefused: unknown, expired or used; the message says what to do.
        """
        keys = Keys(merchant)
        digest = secret_hash(token)
        raw = await self.redis.getdel(keys.dashboard_link(digest))
        if raw is None:
            if await self.redis.exists(keys.dashboard_link_used(digest)):
                raise LinkRefused("This sign-in link was already used. Links work once: run "
                                  "/dashboard again for a new one.")
            raise LinkRefused("This sign-in link has expired or is not valid. Run /dashboard "
                              "again for a new one.")
        await self.redis.set(keys.dashboard_link_used(digest), "1", ex=USED_MEMORY_S)
        data = json.loads(str(raw))
        return Grant(merchant=str(data["merchant"]), member=str(data["member"]),
                     name=str(data["name"]), privilege=int(data["privilege"]))

    async def open_session(self, grant: Grant) -> Session:
        now = time.time()
        session = Session(id=secrets.token_urlsafe(32), grant=grant,
                          csrf=secrets.token_urlsafe(32), created=now,
                          expires=now + self.session_ttl_s)
        key = Keys(grant.merchant).dashboard_session(secret_hash(session.id))
        await self.redis.set(key, json.dumps({
            **asdict(grant), "csrf": session.csrf, "created": session.created,
            "expires": session.expires,
        }), ex=self.session_ttl_s)
        return session

    async def session(self, merchant: str, session_id: str) -> Session | None:
        """The live session of `merchant` with this id, or None. A session of another
        merchant is never found: the key is built from the merchant asked for, and the
        stored grant must name it too."""
        if not session_id:
            return None
        raw = await self.redis.get(Keys(merchant).dashboard_session(secret_hash(session_id)))
        if raw is None:
            return None
        data = cast(dict[str, object], json.loads(str(raw)))
        if data.get("merchant") != merchant or float(str(data["expires"])) <= time.time():
            return None
        grant = Grant(merchant=merchant, member=str(data["member"]), name=str(data["name"]),
                      privilege=int(str(data["privilege"])))
        return Session(id=session_id, grant=grant, csrf=str(data["csrf"]),
                       created=float(str(data["created"])), expires=float(str(data["expires"])))

    async def close_session(self, merchant: str, session_id: str) -> None:
        await self.redis.delete(Keys(merchant).dashboard_session(secret_hash(session_id)))


def csrf_matches(session: Session, submitted: str | None) -> bool:
    """The form's token is the session's (compared in constant time)."""
    return bool(submitted) and secrets.compare_digest(session.csrf.encode(),
                                                      str(submitted).encode())
