"""The shared command registry → discord.py `app_commands`: groups, typed options, choices,
autocomplete, and Manage Server as the default permission of moderator commands."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional

import discord
from discord import app_commands

from bot.commands.registry import Arg, ArgKind, CommandSpec
from bot.events import Privilege

SlashHandler = Callable[[discord.Interaction, CommandSpec, dict[str, Any]], Awaitable[None]]
"""Called with the interaction, the spec and the options by registry name (raw values:
str/int/float/bool, `discord.User`/`discord.Member`, `discord.Attachment`)."""

MAX_CHOICES = 25  # Discord's limit; longer lists are offered through autocomplete

_TYPES: dict[ArgKind, type] = {
    ArgKind.STR: str,
    ArgKind.TEXT: str,
    ArgKind.CHOICE: str,
    ArgKind.INT: int,
    ArgKind.FLOAT: float,
    ArgKind.BOOL: bool,
    ArgKind.MEMBER: discord.User,
    ArgKind.ATTACHMENT: discord.Attachment,
}


def _clip(text: str, fallback: str) -> str:
    text = " ".join(text.split()) or fallback
    return text if len(text) <= 100 else text[:99] + "…"


def _moderated(privilege: Privilege) -> discord.Permissions | None:
    return discord.Permissions(manage_guild=True) if privilege >= Privilege.MODERATOR else None


def _callback(spec: CommandSpec, handler: SlashHandler) -> Any:
    """A coroutine whose signature declares one typed keyword per registry argument.

    Python names are `a0, a1...` and `app_commands.rename` gives them the registry names, so
    any registry name is valid on Discord whether or not it is a Python identifier.
    """
    names = {f"a{i}": arg for i, arg in enumerate(spec.args)}

    async def callback(interaction: discord.Interaction, **options: Any) -> None:
        await handler(interaction, spec, {names[k].name: v for k, v in options.items()})

    params = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=discord.Interaction)]
    # Discord wants required options before optional ones; values travel by name anyway.
    ordered = sorted(names.items(), key=lambda item: not item[1].required)
    for py_name, arg in ordered:
        kind = _TYPES[arg.kind]
        if arg.required:
            params.append(inspect.Parameter(py_name, inspect.Parameter.KEYWORD_ONLY,
                                            annotation=kind))
        else:
            params.append(inspect.Parameter(py_name, inspect.Parameter.KEYWORD_ONLY,
                                            annotation=Optional[kind], default=None))  # noqa: UP045
    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    decorated: Any = app_commands.rename(**{k: a.name for k, a in names.items()})(callback)
    decorated = app_commands.describe(
        **{k: _clip(a.help, a.name) for k, a in names.items()})(decorated)
    short = {k: a for k, a in names.items() if a.kind == ArgKind.CHOICE and a.choices
             and len(a.choices) <= MAX_CHOICES}
    if short:
        decorated = app_commands.choices(**{
            k: [app_commands.Choice(name=c, value=c) for c in a.choices]
            for k, a in short.items()})(decorated)
    long = {k: a for k, a in names.items() if a.kind == ArgKind.CHOICE
            and len(a.choices) > MAX_CHOICES}
    if long:
        decorated = app_commands.autocomplete(
            **{k: _autocomplete(a) for k, a in long.items()})(decorated)
    return decorated


def _autocomplete(arg: Arg) -> Any:
    async def complete(interaction: discord.Interaction,
                       current: str) -> list[app_commands.Choice[str]]:
        typed = current.lower()
        hits = [c for c in arg.choices if c.startswith(typed)]
        hits += [c for c in arg.choices if typed in c and c not in hits]
        return [app_commands.Choice(name=c, value=c) for c in hits[:MAX_CHOICES]]

    return complete


def build_commands(specs: Sequence[CommandSpec], handler: SlashHandler) -> list[
    app_commands.Command[Any, ..., Any] | app_commands.Group
]:
    """One top-level app command per registry group: `faq add` → group `faq`, subcommand `add`.

    A group's default permission is Manage Server only when every subcommand is for
    moderators (Discord sets it per top-level command); the core checks each call anyway.
    """
    groups: dict[str, list[CommandSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.words[0], []).append(spec)
    out: list[app_commands.Command[Any, ..., Any] | app_commands.Group] = []
    for head, members in sorted(groups.items()):
        plain = [s for s in members if len(s.words) == 1]
        subs = [s for s in members if len(s.words) == 2]
        if plain and subs:
            # Discord cannot have both `/faq` and `/faq add`; the subcommands win and the
            # bare command stays reachable as typed text.
            plain = []
        if plain:
            spec = plain[0]
            out.append(app_commands.Command(
                name=head, description=_clip(spec.help, head),
                callback=_callback(spec, handler)))
            out[-1].default_permissions = _moderated(spec.privilege)
            continue
        lowest = min(s.privilege for s in subs)
        group = app_commands.Group(name=head, description=_clip(
            f"{head} commands: " + ", ".join(s.words[1] for s in subs), head),
            default_permissions=_moderated(lowest))
        for spec in subs[:25]:  # Discord allows 25 subcommands per group
            group.add_command(app_commands.Command(
                name=spec.words[1], description=_clip(spec.help, spec.name),
                callback=_callback(spec, handler), parent=group))
        out.append(group)
    return out
