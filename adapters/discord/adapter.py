"""The Discord adapter: a discord.py client whose events become `Inbound`s for the core and
whose replies go out as messages, slash-command responses and follow-ups."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import discord
from discord import app_commands

from adapters.discord.delivery import SendJournal, dm_refused_note, send_once
from adapters.discord.endpoints import DEFAULT_API_URL, DEFAULT_GATEWAY_URL, configure_endpoints
from adapters.discord.members import MemberEvents
from adapters.discord.ratelimits import meter_rate_limits
from adapters.discord.render import ACTION_PREFIX, ALLOWED_MENTIONS, Part, render
from adapters.discord.slash import build_commands
from adapters.discord.translate import (
    inbound_from_interaction,
    inbound_from_message,
    read_attachments,
)
from bot.commands.registry import CommandSpec
from bot.errors import UserFacingError
from bot.events import CommandCall, CommunityRef, Inbound, Outbound, Platform
from bot.ports import Adapter, AdapterHost, Capabilities
from bot.settings import Settings
from bot.storage import keys

log = logging.getLogger(__name__)

DEFER_AFTER_S = 2.0  # Discord drops an interaction not acknowledged within 3 s
READY_TIMEOUT_S = 60.0
TYPING_AFTER_S = 0.8
SYNC_FRESH_S = 24 * 3600  # re-publish at least daily, in case someone edited them by hand


class DiscordAdapter(Adapter):
    """Talks to Discord through discord.py. `shards` set → `AutoShardedClient`."""

    platform = Platform.DISCORD
    capabilities = Capabilities(max_message_length=2000, buttons=True, files=True,
                                typing_indicator=True)

    def __init__(self, token: str, *, api_url: str | None = None,
                 gateway_url: str | None = None, shards: int | None = None,
                 moderator_roles: Collection[str] = (), defer_after_s: float = DEFER_AFTER_S,
                 guild_ready_timeout: float = 2.0) -> None:
        configure_endpoints(api_url or DEFAULT_API_URL, gateway_url or DEFAULT_GATEWAY_URL)
        self._token = token
        self.moderator_roles = frozenset(moderator_roles)
        self.defer_after_s = defer_after_s
        self._shards = shards
        self._guild_ready_timeout = guild_ready_timeout
        self._host: AdapterHost | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._deferred: dict[int, bool] = {}  # interaction id → deferred privately?
        self.members = MemberEvents(lambda: self.host)
        self._build_client(members_intent=True)

    def _build_client(self, *, members_intent: bool) -> None:
        """The discord.py client and its command tree (built again without the privileged
        members intent when the gateway refuses it)."""
        intents = discord.Intents.default()
        intents.message_content = True  # members ask in plain messages
        # The member cache stays as it was without the intent (joins are not kept in memory)
        # and no member lists are requested at startup: joins only need the events.
        cache = discord.MemberCacheFlags.from_intents(intents)
        intents.members = members_intent  # joins and leaves, for referral attribution
        options: dict[str, Any] = {"intents": intents, "allowed_mentions": ALLOWED_MENTIONS,
                                   "guild_ready_timeout": self._guild_ready_timeout,
                                   "member_cache_flags": cache,
                                   "chunk_guilds_at_startup": False}
        self.client: discord.Client = (
            discord.AutoShardedClient(shard_count=self._shards, **options) if self._shards
            else discord.Client(**options))
        self.tree = app_commands.CommandTree(self.client)
        self.tree.error(self._on_tree_error)
        self.client.event(self.on_message)
        self.client.event(self.on_interaction)
        self.client.event(self.on_guild_join)
        self.members.attach(self.client)

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordAdapter:
        if settings.discord_token is None:
            raise ValueError("DISCORD_TOKEN is not set")
        return cls(settings.discord_token.get_secret_value(),
                   api_url=settings.discord_api_url, gateway_url=settings.discord_gateway_url,
                   shards=settings.discord_shards,
                   moderator_roles=settings.discord_moderator_roles)

    # Lifecycle

    async def start(self, host: AdapterHost) -> None:
        """Log in, connect the gateway, wait for READY and sync slash commands per guild."""
        self._host = host
        meter_rate_limits()
        try:
            await self._connect()
        except discord.PrivilegedIntentsRequired:
            log.warning("Discord refused the privileged Server Members intent (switch it on "
                        "in the developer portal, Bot → Privileged Gateway Intents): running "
                        "without it, so joins and leaves are not seen and invite referrals "
                        "are not attributed")
            await self.client.close()
            self._build_client(members_intent=False)
            await self._connect()
        for guild in self.client.guilds:
            await self._sync(guild)
        log.info("Discord connected as %s in %d guild(s)", self.client.user,
                 len(self.client.guilds))

    async def _connect(self) -> None:
        for command in build_commands(list(self.host.commands), self._on_slash):
            self.tree.add_command(command)
        await self.client.login(self._token)
        self._runner = asyncio.create_task(self.client.connect(reconnect=True))
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._runner}, timeout=READY_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._runner in done:
                await self._runner  # raises the connection error (bad token, intents...)
            raise TimeoutError(f"Discord gateway not ready after {READY_TIMEOUT_S:.0f} s")

    async def stop(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self.client.close()
        if self._runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._runner

    async def _sync(self, guild: discord.abc.Snowflake) -> None:
        """Publish the commands to `guild` unless the same set was synced there in the last
        day (by any process): Discord rate-limits command updates per guild."""
        self.tree.copy_global_to(guild=guild)
        payload = [c.to_dict(self.tree) for c in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = keys.discord(str(self.client.application_id), f"commands:{guild.id}")
        if await self.host.redis.get(key) == digest:
            log.info("slash commands of guild %s are up to date", guild.id)
            return
        synced = await self.tree.sync(guild=guild)
        await self.host.redis.set(key, digest, ex=SYNC_FRESH_S)
        log.info("synced %d slash commands to guild %s", len(synced), guild.id)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._sync(guild)
        await self.members.follow(guild)

    async def create_invite(self, community: CommunityRef, name: str) -> str | None:
        """A personal invite link (`/invite`); see `MemberEvents.create_invite`."""
        return await self.members.create_invite(community, name)

    # Inbound

    @property
    def host(self) -> AdapterHost:
        if self._host is None:
            raise RuntimeError("the Discord adapter has not been started")
        return self._host

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        try:
            inbound = await inbound_from_message(message, me, self.moderator_roles)
        except UserFacingError as exc:
            await self._send_parts(message.channel, render(Outbound(exc.message)), message)
            return
        addressed = inbound.is_direct or inbound.mentions_bot or inbound.reply_to_bot
        task = asyncio.create_task(self.host.handle(inbound))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        # "typing" at once where an answer is expected; for other messages (a question in a
        # help channel) only once the core is visibly working on one — never for chatter,
        # which the core returns from at once.
        if not addressed:
            await asyncio.wait({task}, timeout=TYPING_AFTER_S)
        if not task.done():
            async with message.channel.typing():
                replies = await task
        else:
            replies = task.result()
        for index, outbound in enumerate(replies):
            await self._reply_to_message(message, outbound, index)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Button clicks: the button's action is run as if the member had typed it."""
        if interaction.type is not discord.InteractionType.component:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if not custom_id.startswith(ACTION_PREFIX):
            return
        action = custom_id[len(ACTION_PREFIX):]
        inbound = inbound_from_interaction(interaction, action, None,
                                           moderator_roles=self.moderator_roles)
        await self._answer_interaction(interaction, inbound, slow=False, private=False)

    async def _on_slash(self, interaction: discord.Interaction, spec: CommandSpec,
                        options: dict[str, Any]) -> None:
        raw: dict[str, Any] = {}
        files: list[discord.Attachment] = []
        for name, value in options.items():
            if value is None:
                continue
            if isinstance(value, discord.Attachment):
                files.append(value)
            elif isinstance(value, discord.abc.User):
                raw[name] = f"discord:{value.id}"
            else:
                raw[name] = value
        if files:
            await self._defer(interaction, spec.private)  # a download may take a while
        try:
            attachments = await read_attachments(files)
        except UserFacingError as exc:
            await self._respond(interaction, [Outbound(exc.message, private=True)])
            return
        text = "/" + spec.name + "".join(f" {k}={v}" for k, v in raw.items())
        inbound = inbound_from_interaction(interaction, text, CommandCall(spec.name, raw),
                                           attachments, self.moderator_roles)
        await self._answer_interaction(interaction, inbound, slow=spec.slow,
                                       private=spec.private)

    async def _answer_interaction(self, interaction: discord.Interaction, inbound: Inbound,
                                  *, slow: bool, private: bool) -> None:
        """Defer at once for slow commands, or when the answer is not ready within
        `defer_after_s`; then respond (or follow up) with every outbound."""
        if slow:
            await self._defer(interaction, private)
        task = asyncio.create_task(self.host.handle(inbound))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if not interaction.response.is_done():
            done, _ = await asyncio.wait({task}, timeout=self.defer_after_s)
            if not done:
                await self._defer(interaction, private)
        replies = await task
        await self._respond(interaction, replies or [Outbound("Done.", private=True)])

    async def _defer(self, interaction: discord.Interaction, private: bool) -> None:
        """Acknowledge now ("thinking..."); remember whether only the member sees it."""
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=private, thinking=True)
            self._deferred[interaction.id] = private

    async def _respond(self, interaction: discord.Interaction,
                       replies: Sequence[Outbound]) -> None:
        # The first follow-up after a deferral replaces the "thinking" message and keeps its
        # visibility; when the answer's privacy differs (a public slow command refusing a
        # member privately), remove the placeholder and send a fresh follow-up instead.
        deferred = self._deferred.pop(interaction.id, None)
        if deferred is not None and replies and replies[0].private != deferred:
            with contextlib.suppress(discord.NotFound):
                await interaction.delete_original_response()
        for index, outbound in enumerate(replies):
            for part in render(outbound, index):
                extras = _extras(part)
                if not interaction.response.is_done():
                    await interaction.response.send_message(
                        part.content or None, ephemeral=outbound.private,
                        allowed_mentions=ALLOWED_MENTIONS, **extras)
                else:
                    await interaction.followup.send(
                        part.content or discord.utils.MISSING, ephemeral=outbound.private,
                        allowed_mentions=ALLOWED_MENTIONS, wait=True, **extras)
                _forget_view(part)

    async def _on_tree_error(self, interaction: discord.Interaction,
                             error: app_commands.AppCommandError) -> None:
        log.error("slash command failed: %s", error, exc_info=error)
        with contextlib.suppress(discord.HTTPException):
            sorry = "Sorry, something went wrong on my side."
            if interaction.response.is_done():
                await interaction.followup.send(sorry, ephemeral=True)
            else:
                await interaction.response.send_message(sorry, ephemeral=True)

    # Outbound

    async def _reply_to_message(self, message: discord.Message, outbound: Outbound,
                                index: int) -> list[str]:
        if outbound.private and message.guild is not None:
            # no ephemeral messages outside interactions: tell the member privately
            try:
                dm = await message.author.create_dm()
                return await self._send_parts(dm, render(outbound, index), None)
            except discord.Forbidden as exc:  # 50007: DMs closed, or the bot blocked
                log.info("member %s takes no DMs (%s); telling them in the channel",
                         message.author.id, exc.code)
                # Never the private answer itself: a short note that pings that member only.
                outbound = Outbound(dm_refused_note(message.author.mention))
        return await self._send_parts(message.channel, render(outbound, index), message)

    async def _send_parts(self, channel: discord.abc.Messageable, parts: list[Part],
                          reference: discord.Message | discord.MessageReference | None,
                          ) -> list[str]:
        ids: list[str] = []
        for i, part in enumerate(parts):
            sent = await channel.send(
                part.content or None, nonce=part.nonce, allowed_mentions=ALLOWED_MENTIONS,
                reference=reference if i == 0 else None,  # type: ignore[arg-type]
                mention_author=False, **_extras(part))
            _forget_view(part)
            ids.append(str(sent.id))
        return ids

    async def send(self, outbound: Outbound) -> list[str]:
        """Post to `outbound.destination`: a channel or thread, or a member's DMs."""
        dest = outbound.destination
        if dest is None or dest.platform != Platform.DISCORD:
            raise ValueError("DiscordAdapter.send needs a Discord destination")
        fallback = dest.thread_id or dest.channel_id
        if outbound.private and dest.user_id and fallback:
            # A private notice with a channel to fall back on (a campaign's moderator): by
            # DM; where Discord refuses it, a note there that pings that member alone.
            try:
                return await self.send(replace(outbound, destination=replace(
                    dest, channel_id=None, thread_id=None)))
            except discord.Forbidden as exc:
                log.info("member %s takes no DMs (%s); telling them in %s", dest.user_id,
                         exc.code, fallback)
                return await self._send_parts(
                    self.client.get_partial_messageable(int(fallback)),
                    render(Outbound(dm_refused_note(f"<@{dest.user_id}>", answer=False))), None)
        channel: discord.abc.Messageable
        target = dest.thread_id or dest.channel_id
        if target:
            channel = self.client.get_partial_messageable(int(target))
        elif dest.user_id:
            user = self.client.get_user(int(dest.user_id)) or await self.client.fetch_user(
                int(dest.user_id))
            channel = await user.create_dm()
        else:
            raise ValueError("a Discord destination needs a channel_id or a user_id")
        reference = None
        if outbound.reply_to and outbound.reply_to.isdigit() and not dest.user_id:
            reference = discord.MessageReference(
                message_id=int(outbound.reply_to), channel_id=int(dest.channel_id or 0),
                fail_if_not_exists=False)
        if outbound.idempotency_key:
            return await self._send_once(channel, render(outbound), reference,
                                         outbound.idempotency_key)
        return await self._send_parts(channel, render(outbound), reference)

    async def _send_once(self, channel: discord.abc.Messageable, parts: list[Part],
                         reference: discord.MessageReference | None, key: str) -> list[str]:
        me = self.client.user
        assert me is not None

        async def post(part: Part, first: bool) -> str:
            [message_id] = await self._send_parts(channel, [part], reference if first else None)
            return message_id

        journal = SendJournal(self.host.redis, str(self.client.application_id))
        return await send_once(journal, channel, me, parts, key, post)


def _extras(part: Part) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if part.embeds:
        extras["embeds"] = part.embeds
    if part.view is not None:
        extras["view"] = part.view
    if part.files:
        extras["files"] = part.files
    return extras


def _forget_view(part: Part) -> None:
    """Clicks are handled in `on_interaction` by custom_id (so they work after a restart and
    in any process); discord.py need not keep the sent view in memory."""
    if part.view is not None:
        part.view.stop()
