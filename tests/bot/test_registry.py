"""Command declarations: parsing typed arguments, helpful errors for malformed input."""

from __future__ import annotations

import pytest

from bot.commands.registry import Arg, ArgKind, CommandContext, CommandRegistry, CommandSpec
from bot.errors import BadArgument, UnknownCommand
from bot.events import Attachment, Privilege


async def _noop(ctx: CommandContext) -> str:
    return "ok"


@pytest.fixture
def registry() -> CommandRegistry:
    reg = CommandRegistry()
    reg.register(CommandSpec("faq add", "Add an FAQ entry.", _noop, args=(
        Arg("id"), Arg("question"), Arg("answer", ArgKind.TEXT)), privilege=Privilege.MODERATOR))
    reg.register(CommandSpec("faq remove", "Remove an entry.", _noop, args=(Arg("id"),)))
    reg.register(CommandSpec("recommend", "Products for you.", _noop, args=(
        Arg("query", ArgKind.TEXT, required=False),)))
    reg.register(CommandSpec("limit", "Set a limit.", _noop, args=(
        Arg("count", ArgKind.INT), Arg("strict", ArgKind.BOOL, required=False, default=False),
        Arg("mode", ArgKind.CHOICE, choices=("soft", "hard"), required=False, default="soft"))))
    reg.register(CommandSpec("catalog import", "Import.", _noop, args=(
        Arg("file", ArgKind.ATTACHMENT),)))
    return reg


def test_subcommand_with_quoted_and_rest_of_line(registry: CommandRegistry) -> None:
    spec, args = registry.parse_text(
        '/faq add shipping "How fast do you ship?" Orders leave in 1-2 days.  Really.')
    assert spec.name == "faq add"
    assert args == {"id": "shipping", "question": "How fast do you ship?",
                    "answer": "Orders leave in 1-2 days.  Really."}


def test_optional_text_and_bot_suffix(registry: CommandRegistry) -> None:
    spec, args = registry.parse_text("/recommend@ShopBot a warm sleeping bag")
    assert (spec.name, args["query"]) == ("recommend", "a warm sleeping bag")
    assert registry.parse_text("/recommend")[1] == {"query": None}


def test_typed_arguments_and_keywords(registry: CommandRegistry) -> None:
    _, args = registry.parse_text("/limit 5 yes mode=hard")
    assert args == {"count": 5, "strict": True, "mode": "hard"}


@pytest.mark.parametrize(("text", "fragment"), [
    ("/limit five", "whole number"),
    ("/limit 5 maybe", "yes or no"),
    ("/limit 5 no mode=medium", "one of soft, hard"),
    ("/limit", "needs <count>"),
    ("/limit 1 no soft extra", "Too many arguments"),
    ('/faq add x "unclosed question', "quote is not closed"),
    ("/catalog import", "needs <file>"),
])
def test_malformed_arguments_say_how_to_fix(registry: CommandRegistry, text: str,
                                            fragment: str) -> None:
    with pytest.raises(BadArgument) as caught:
        registry.parse_text(text)
    assert fragment in caught.value.message
    assert "Usage: /" in caught.value.message


def test_unknown_commands_suggest(registry: CommandRegistry) -> None:
    with pytest.raises(UnknownCommand, match="Did you mean /recommend"):
        registry.parse_text("/recomend tents")
    with pytest.raises(UnknownCommand, match="takes one of: add, remove"):
        registry.parse_text("/faq explode")


def test_attachment_and_platform_parsed_options(registry: CommandRegistry) -> None:
    file = Attachment("c.csv", b"sku\n")
    _spec, args = registry.parse_text("/catalog import", (file,))
    assert args["file"] is file
    limit = registry.get("limit")
    assert limit is not None
    assert registry.coerce(limit, {"count": "3"}) == {"count": 3, "strict": False,
                                                      "mode": "soft"}
    with pytest.raises(BadArgument, match="no option 'colour'"):
        registry.coerce(limit, {"count": 1, "colour": "red"})


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError):
        CommandSpec("Bad Name!", "x", _noop)
    with pytest.raises(ValueError):
        CommandSpec("x", "x", _noop, args=(Arg("a", ArgKind.TEXT), Arg("b")))
    reg = CommandRegistry()
    reg.register(CommandSpec("x", "x", _noop))
    with pytest.raises(ValueError):
        reg.register(CommandSpec("x", "x", _noop))


def test_visible_to_respects_privilege(registry: CommandRegistry) -> None:
    member = {s.name for s in registry.visible_to(Privilege.MEMBER)}
    assert "faq add" not in member and "recommend" in member
    assert "faq add" in {s.name for s in registry.visible_to(Privilege.MODERATOR)}
