"""Malformed and hostile input, fuzzed with hypothesis, against command parsing and the whole
console pipeline: every input gets one reply or a clear error, nothing crashes, and nothing
stored changes unless the reply says it did."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands.builtin import BuiltinCommands
from bot.commands.registry import CommandRegistry
from bot.errors import UserInputError
from bot.events import CommunityRef, Inbound, MemberRef, Platform, Privilege
from bot.safety.filters import strip_mentions
from bot.storage.store import Store
from tests.faults.support import GENERIC_ERROR, CommandPipeline, snapshot
from tests.support.tenancy import approve

FRAGMENTS = st.sampled_from([
    '"', "'", '\\', '\\"', '""', "''", '"unclosed', "'unclosed", "=", "field=", "value=x",
    "field=tone", "name", "tone", "\x00", "\n", "\r\n", "\t", "\u202e", "\u200b", "\ufeff",
    "@everyone", "@here", "<@123>", "<@!1>", "telegram:1", "💥" * 3, "a" * 4000, "-1",
    "9" * 40, "nan", "inf", "yes", "NO", "$(rm -rf /)", "'; DROP TABLE faq; --",
    "{{ 7*7 }}", "{% raw %}", "../../etc/passwd", "\ud800", "\udfff",
])
WORDS = st.sampled_from([
    "help", "HELP", "help@ShopkeepBot", "persona", "persona set", "persona show", "Persona Set",
    "helpchannel", "helpchannel add", "helpchannel remove", "helpchannel list", "nosuch",
    "", "/", "help help", "persona  set",
])
PIECE = FRAGMENTS | st.text(max_size=40) | st.text(
    alphabet=st.characters(codec="utf-8", categories=("Cc", "Cf", "Zs", "Lo", "So")),
    max_size=20)
COMMAND_TEXT = st.builds(
    lambda lead, word, parts: f"{lead}/{word} " + " ".join(parts),
    st.sampled_from(["", " ", "\n", "\t"]), WORDS, st.lists(PIECE, max_size=6),
)
ANY_TEXT = COMMAND_TEXT | st.text(max_size=200) | st.lists(PIECE, max_size=8).map("".join)

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _registry() -> CommandRegistry:
    registry = CommandRegistry()
    registry.register_all(BuiltinCommands(registry, Store("redis://unused")).specs())
    return registry


@FUZZ
@given(text=ANY_TEXT)
def test_parse_text_answers_or_raises_a_user_error(text: str) -> None:
    registry = _registry()
    try:
        spec, args = registry.parse_text(text)
    except UserInputError as exc:
        assert exc.message.strip() and "Traceback" not in exc.message
        return
    assert set(args) == {a.name for a in spec.args}


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)


@FUZZ
@given(name=st.sampled_from(["help", "persona set", "helpchannel add"]),
       raw=st.dictionaries(st.sampled_from(["field", "value", "command", "bogus", ""]), JSONISH,
                           max_size=4))
def test_platform_parsed_options_are_checked(name: str, raw: dict[str, Any]) -> None:
    """What a Discord slash command delivers already split goes through `coerce`."""
    registry = _registry()
    spec = registry.get(name)
    assert spec is not None
    try:
        values = registry.coerce(spec, raw)
    except UserInputError as exc:
        assert exc.message.strip()
        return
    assert set(values) == {a.name for a in spec.args}


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


SHOP_GROUP = CommunityRef(Platform.TELEGRAM, "-100", "-100")  # approved in each test


def _inbound(text: str, role: Privilege) -> Inbound:
    """Eve writes in the shop's group, where `role` is her role (a DM carries none)."""
    return Inbound(platform=Platform.TELEGRAM, member=MemberRef(Platform.TELEGRAM, "7", "Eve"),
                   text=text, privilege=role, mentions_bot=True, community=SHOP_GROUP)


def test_members_fuzzing_commands_change_nothing(redis_url: str, redis_sync: Any,
                                                 runner: asyncio.Runner) -> None:
    pipeline = CommandPipeline(redis_url)
    runner.run(pipeline.start())
    runner.run(approve(pipeline.redis, SHOP_GROUP.key))
    console = runner.run(pipeline.console())
    runner.run(console.say("/persona set shop_name Trailhead"))
    runner.run(console.say("/helpchannel add"))
    before = runner.run(snapshot(redis_url))
    answered: list[int] = []

    @FUZZ
    @given(text=COMMAND_TEXT)
    def one(text: str) -> None:
        replies = runner.run(pipeline.handle(_inbound(text, Privilege.MEMBER)))
        assert len(replies) == 1, (text, replies)
        assert replies[0].text.strip()
        assert GENERIC_ERROR not in replies[0].text, text
        answered.append(1)

    try:
        one()
        assert runner.run(snapshot(redis_url)) == before
    finally:
        runner.run(pipeline.stop())
    assert len(answered) >= 100


def test_moderators_fuzzing_persona_store_exactly_what_they_were_told(
        redis_url: str, redis_sync: Any, runner: asyncio.Runner) -> None:
    pipeline = CommandPipeline(redis_url)
    runner.run(pipeline.start())
    runner.run(approve(pipeline.redis, SHOP_GROUP.key))
    console = runner.run(pipeline.console())
    runner.run(console.say("/helpchannel add"))
    channels = runner.run(snapshot(redis_url, "sk:default:help_channels"))

    @FUZZ
    @given(field=st.sampled_from(["name", "tone", "greeting", "shop_name", "style_rules",
                                  "NAME", ""]),
           value=st.lists(PIECE, min_size=0, max_size=4).map(" ".join))
    def one(field: str, value: str) -> None:
        text = f"/persona set {field} {value}"
        persona_before = runner.run(pipeline.redis.hgetall("sk:default:persona"))
        replies = runner.run(pipeline.handle(_inbound(text, Privilege.MODERATOR)))
        assert len(replies) == 1, text
        reply = replies[0].text
        assert GENERIC_ERROR not in reply, text
        stored = runner.run(pipeline.redis.hgetall("sk:default:persona"))
        if reply.startswith("Persona "):
            told = reply.split(" is now: ", 1)[1]
            # The reply is guarded (no pings); what is stored is what the moderator typed.
            assert strip_mentions(stored[field.lower()]) == told
        else:
            assert stored == persona_before, (text, reply)

    try:
        one()
        assert runner.run(snapshot(redis_url, "sk:default:help_channels")) == channels
    finally:
        runner.run(pipeline.stop())
