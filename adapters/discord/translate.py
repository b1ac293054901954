"""Discord messages and interactions → `bot.events.Inbound`, and who may do what."""

from __future__ import annotations

import re
from collections.abc import Collection

import discord

from bot.events import (
    Attachment,
    CommandCall,
    CommunityRef,
    Inbound,
    MemberRef,
    Platform,
    Privilege,
)

MAX_ATTACHMENT_BYTES = 8 * 1024 * 1024  # larger files are refused, not read into memory


def privilege_of(user: discord.abc.User, guild: discord.Guild | None,
                 moderator_roles: Collection[str] = (),
                 channel_permissions: discord.Permissions | None = None) -> Privilege:
    """Guild owner → OWNER, Administrator → ADMIN, Manage Server / Manage Messages (or a role
    the merchant named, by id or name) → MODERATOR; everyone else, and every DM, → MEMBER.

    `channel_permissions` (what Discord resolved for an interaction) is used when the guild
    is not cached, so a missing cache never grants more than Discord itself says.
    """
    if guild is None or not isinstance(user, discord.Member):
        return Privilege.MEMBER
    if guild.owner_id is not None and guild.owner_id == user.id:
        return Privilege.OWNER
    perms = user.guild_permissions if guild.roles else (channel_permissions
                                                         or discord.Permissions.none())
    if perms.administrator:
        return Privilege.ADMIN
    if perms.manage_guild or perms.manage_messages:
        return Privilege.MODERATOR
    if moderator_roles and any(str(r.id) in moderator_roles or r.name in moderator_roles
                               for r in user.roles):
        return Privilege.MODERATOR
    return Privilege.MEMBER


def community_of(channel: object, guild: discord.Guild | None,
                 channel_id: int | None) -> CommunityRef | None:
    """Guild + channel (+ thread, whose parent is the channel); None in a DM."""
    if guild is None:
        return None
    if isinstance(channel, discord.Thread):
        parent = channel.parent_id if channel.parent_id is not None else channel.id
        return CommunityRef(Platform.DISCORD, str(guild.id), str(parent), str(channel.id))
    return CommunityRef(Platform.DISCORD, str(guild.id), str(channel_id))


def strip_bot_mention(content: str, bot_id: int) -> tuple[str, bool]:
    """Remove `<@id>` / `<@!id>` of the bot; says whether there was one."""
    pattern = re.compile(rf"<@!?{bot_id}>")
    stripped, count = pattern.subn(" ", content)
    return " ".join(stripped.split()), count > 0


def member_of(user: discord.abc.User) -> MemberRef:
    return MemberRef(Platform.DISCORD, str(user.id), user.display_name)


async def read_attachments(files: list[discord.Attachment]) -> tuple[Attachment, ...]:
    """Download what a member attached (a command's file), refusing oversized ones."""
    out: list[Attachment] = []
    for file in files:
        if file.size > MAX_ATTACHMENT_BYTES:
            from bot.errors import UserInputError

            raise UserInputError(f"{file.filename} is {file.size // 1024} KiB; files over "
                                 f"{MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB are not read.")
        data = await file.read()
        out.append(Attachment(file.filename, data,
                              file.content_type or "application/octet-stream"))
    return tuple(out)


async def inbound_from_message(message: discord.Message, bot_user: discord.ClientUser,
                               moderator_roles: Collection[str] = ()) -> Inbound:
    """A channel or DM message. The bot's mention is stripped from the text; a reply to one
    of the bot's messages sets `reply_to_bot`. Attachments are read only for `/` commands."""
    text, mentioned = strip_bot_mention(message.content, bot_user.id)
    ref = message.reference
    resolved = ref.resolved if ref is not None else None
    reply_to_bot = isinstance(resolved, discord.Message) and resolved.author.id == bot_user.id
    attachments: tuple[Attachment, ...] = ()
    if message.attachments and text.startswith("/"):
        attachments = await read_attachments(message.attachments)
    return Inbound(
        platform=Platform.DISCORD,
        member=member_of(message.author),
        text=text,
        community=community_of(message.channel, message.guild, message.channel.id),
        message_id=str(message.id),
        privilege=privilege_of(message.author, message.guild, moderator_roles),
        mentions_bot=mentioned,
        reply_to_bot=reply_to_bot,
        attachments=attachments,
        sent_at=message.created_at.timestamp(),
        extras={"discord_channel_id": str(message.channel.id)},
    )


def inbound_from_interaction(interaction: discord.Interaction, text: str,
                             command: CommandCall | None,
                             attachments: tuple[Attachment, ...] = (),
                             moderator_roles: Collection[str] = ()) -> Inbound:
    """A slash command (with its parsed options) or a button click (its action as text)."""
    return Inbound(
        platform=Platform.DISCORD,
        member=member_of(interaction.user),
        text=text,
        community=community_of(interaction.channel, interaction.guild, interaction.channel_id),
        message_id=f"i{interaction.id}",
        privilege=privilege_of(interaction.user, interaction.guild, moderator_roles,
                               interaction.permissions),
        mentions_bot=True,  # an interaction is always addressed to the bot
        command=command,
        attachments=attachments,
        sent_at=interaction.created_at.timestamp(),
        extras={"discord_channel_id": str(interaction.channel_id)},
    )
