"""Command declarations, parsing and the built-in commands."""

from bot.commands.registry import (
    Arg,
    ArgKind,
    CommandContext,
    CommandRegistry,
    CommandResult,
    CommandSpec,
)

__all__ = [
    "Arg",
    "ArgKind",
    "CommandContext",
    "CommandRegistry",
    "CommandResult",
    "CommandSpec",
]
