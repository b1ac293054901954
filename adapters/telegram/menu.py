"""The command menu: the shared registry published with setMyCommands, scoped by privilege."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from telegram import Bot, BotCommand, BotCommandScopeAllChatAdministrators

from bot.commands.registry import CommandSpec
from bot.events import Privilege

log = logging.getLogger(__name__)

_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_COMMANDS = 100  # Telegram's limit per scope


async def publish_commands(bot: Bot, specs: Iterable[CommandSpec]) -> None:
    """Member commands for everyone, all commands in the administrators' menu. A group
    (`faq add`, `faq list`) is published once by its first word."""
    groups: dict[str, list[CommandSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.words[0], []).append(spec)
    everyone: list[BotCommand] = []
    admins: list[BotCommand] = []
    for name, group in sorted(groups.items()):
        if not _COMMAND_NAME.match(name):
            log.warning("/%s cannot be a Telegram command name; not published", name)
            continue
        command = BotCommand(name, _description(group))
        admins.append(command)
        if min(s.privilege for s in group) <= Privilege.MEMBER:
            everyone.append(command)
    await bot.set_my_commands(everyone[:MAX_COMMANDS])
    await bot.set_my_commands(admins[:MAX_COMMANDS], scope=BotCommandScopeAllChatAdministrators())


def _description(group: list[CommandSpec]) -> str:
    if len(group) == 1 and len(group[0].words) == 1:
        text = group[0].help
    else:
        text = "/" + group[0].words[0] + " " + " | ".join(
            s.words[1] if len(s.words) > 1 else "…" for s in group)
    text = text.strip() or group[0].name
    return text if len(text) <= 256 else text[:255] + "…"
