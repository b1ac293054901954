"""Discord joins, leaves and invite links → `MembershipChange`s for the core (translation only)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
import discord

from adapters.discord.translate import member_of
from bot.events import CommunityRef, MembershipChange, Platform
from bot.ports import AdapterHost

log = logging.getLogger(__name__)

INVITES_TIMEOUT_S = 10.0  # a join waits for this read at most; then it goes without counts
_PLATFORM_ERRORS = (discord.HTTPException, aiohttp.ClientError, TimeoutError, OSError)


def guild_community(guild_id: int, guild: discord.Guild | None = None) -> CommunityRef:
    """The community a join or leave happened in. A join has no channel: the guild's system
    channel stands in (else the guild id). `key` depends on the guild only, so the merchant
    resolves exactly as for messages in that guild."""
    system = guild.system_channel if guild is not None else None
    channel = system.id if system is not None else guild_id
    return CommunityRef(Platform.DISCORD, str(guild_id), str(channel))


class MemberEvents:
    """Follows joins and leaves in the bot's guilds and makes invite links.

    Discord does not say which invite a member used, so each guild's invite use counts are
    kept (read when the guild becomes available and after every join); a join passes the
    counts from before and after it, and the core decides who invited. Joins in one guild are
    serialized so each compares against the counts the previous one left.
    """

    def __init__(self, host: Callable[[], AdapterHost],
                 invites_timeout_s: float = INVITES_TIMEOUT_S) -> None:
        self._host = host
        self.invites_timeout_s = invites_timeout_s
        self.client: discord.Client | None = None
        self.uses: dict[int, dict[str, int]] = {}  # guild id → invite code → uses
        self._locks: dict[int, asyncio.Lock] = {}
        self._unreadable: set[int] = set()  # guilds already warned about (no Manage Server)

    def attach(self, client: discord.Client) -> None:
        """Listen on `client` (called again when the adapter rebuilds its client)."""
        self.client = client
        client.event(self.on_member_join)
        client.event(self.on_raw_member_remove)
        client.event(self.on_guild_available)
        client.event(self.on_guild_remove)

    def _is_me_or_bot(self, user: discord.abc.User) -> bool:
        me = self.client.user if self.client is not None else None
        return user.bot or (me is not None and user.id == me.id)

    def _lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    # Invite use counts

    async def follow(self, guild: discord.Guild) -> None:
        """Take `guild`'s invite use counts (when it becomes available or the bot joins)."""
        async with self._lock(guild.id):
            counts = await self._read_uses(guild)
            if counts is None:
                self.uses.pop(guild.id, None)
            else:
                self.uses[guild.id] = counts

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.follow(guild)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        self.uses.pop(guild.id, None)
        self._locks.pop(guild.id, None)

    async def _read_uses(self, guild: discord.Guild) -> dict[str, int] | None:
        """Every invite's use count, or None when they cannot be read (no rights, errors)."""
        try:
            invites = await asyncio.wait_for(guild.invites(), self.invites_timeout_s)
        except discord.Forbidden:
            # Once per guild: every join would repeat it.
            level = logging.DEBUG if guild.id in self._unreadable else logging.WARNING
            self._unreadable.add(guild.id)
            log.log(level, "cannot read the invites of guild %s (the bot needs the Manage "
                    "Server permission): joins there are reported without invite attribution",
                    guild.id)
            return None
        except _PLATFORM_ERRORS as exc:
            log.warning("reading the invites of guild %s failed (%s): this join goes without "
                        "invite attribution", guild.id, exc or type(exc).__name__)
            return None
        self._unreadable.discard(guild.id)
        return {invite.code: invite.uses or 0 for invite in invites}

    # Joins and leaves

    async def on_member_join(self, member: discord.Member) -> None:
        try:
            await self._joined(member)
        except Exception:  # never into discord.py's dispatcher
            log.exception("could not report member %s joining", member.id)

    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        try:
            await self._left(payload)
        except Exception:
            log.exception("could not report member %s leaving", payload.user.id)

    async def _joined(self, member: discord.Member) -> None:
        if self._is_me_or_bot(member):
            return
        guild = member.guild
        async with self._lock(guild.id):
            before = self.uses.get(guild.id)
            after = await self._read_uses(guild)
            if after is not None:
                self.uses[guild.id] = after
        known = before is not None and after is not None
        joined_at = member.joined_at.timestamp() if member.joined_at else time.time()
        await self._report(MembershipChange(
            platform=Platform.DISCORD, member=member_of(member),
            community=guild_community(guild.id, guild), joined=True,
            invite_uses_before=before if known else None,
            invite_uses_after=after if known else None, at=joined_at))

    async def _left(self, payload: discord.RawMemberRemoveEvent) -> None:
        if self._is_me_or_bot(payload.user):
            return
        guild = self.client.get_guild(payload.guild_id) if self.client is not None else None
        await self._report(MembershipChange(
            platform=Platform.DISCORD, member=member_of(payload.user),
            community=guild_community(payload.guild_id, guild),
            joined=False, at=time.time()))

    async def _report(self, change: MembershipChange) -> None:
        """Hand the change to the core; a failure there is logged, never raised into
        discord.py's dispatcher."""
        try:
            await self._host().membership(change)
        except Exception:
            log.exception("could not record %s %s guild %s", change.member.key,
                          "joining" if change.joined else "leaving",
                          change.community.community_id)

    # Invite links

    async def create_invite(self, community: CommunityRef, name: str) -> str | None:
        """A never-expiring, unlimited, unique invite to the community's channel (the guild's
        system channel when there is none); `name` goes to the audit log, as Discord keeps
        no invite names. None when Discord refuses or fails; the reason is logged."""
        client = self.client
        if client is None or community.platform != Platform.DISCORD:
            return None
        try:
            guild_id = int(community.community_id)
            channel_id = int(community.channel_id)
            if channel_id == guild_id:
                guild = client.get_guild(guild_id)
                if guild is None or guild.system_channel is None:
                    log.warning("no channel to make an invite in for guild %s", guild_id)
                    return None
                channel_id = guild.system_channel.id
            channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
            if isinstance(channel, discord.Thread):
                channel = channel.parent or channel
            if not isinstance(channel, discord.abc.GuildChannel):
                log.warning("channel %s takes no invites", channel_id)
                return None
            invite = await asyncio.wait_for(
                channel.create_invite(max_age=0, max_uses=0, temporary=False, unique=True,
                                      reason=f"Shopkeep referral link {name}"),
                self.invites_timeout_s)
        except discord.Forbidden as exc:
            log.warning("Discord refused an invite in %s (the bot needs the Create Invite "
                        "permission there): %s", community.channel_key, exc.text or exc.status)
            return None
        except (*_PLATFORM_ERRORS, ValueError) as exc:
            log.warning("could not make an invite in %s: %s", community.channel_key,
                        exc or type(exc).__name__)
            return None
        counts = self.uses.get(guild_id)
        if counts is not None:
            counts.setdefault(invite.code, 0)  # a join through it must see it move from 0
        return invite.url
