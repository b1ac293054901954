"""Huge messages and replies that would ping: the router bounds every message before any work
(for every platform, since every adapter enters there) and guards every reply, command errors
that quote the member included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.events import CommandCall, Inbound, MemberRef, Platform, Privilege
from tests.faults.support import CommandPipeline, snapshot

LIMIT = 4000


class Recorder:
    """An observer (the router's contract with profiles and analytics) that keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def observe(self, inbound: Inbound, merchant: str) -> None:
        self.seen.append(inbound.text)


async def _quote(ctx: CommandContext) -> str:
    return f"you said: {ctx.args['text']}"


QUOTE = CommandSpec("quote", "Repeat the text (stands for any reply that echoes a member).",
                    _quote, args=(Arg("text", ArgKind.TEXT),))


@pytest.fixture
async def pipeline(redis_url: str, redis_client: object) -> AsyncIterator[CommandPipeline]:
    pipe = CommandPipeline(redis_url, extra=[QUOTE])
    await pipe.start()
    yield pipe
    await pipe.stop()


def _inbound(text: str, platform: Platform = Platform.TELEGRAM,
             role: Privilege = Privilege.MODERATOR, command: CommandCall | None = None
             ) -> Inbound:
    return Inbound(platform=platform, member=MemberRef(platform, "7", "Eve"), text=text,
                   privilege=role, mentions_bot=True, command=command)


@pytest.mark.parametrize("platform", list(Platform))
async def test_a_command_over_the_limit_is_refused_and_changes_nothing(
        pipeline: CommandPipeline, redis_url: str, platform: Platform) -> None:
    await pipeline.handle(_inbound("/persona set shop_name Trailhead", platform))
    before = await snapshot(redis_url)
    long_value = "Trail " * 1000
    for inbound in (
        _inbound(f"/persona set greeting {long_value}", platform),
        _inbound("", platform, command=CommandCall("persona set", {"field": "greeting",
                                                                   "value": long_value})),
    ):
        [reply] = await pipeline.handle(inbound)
        assert "characters long; the limit is 4,000. Nothing was changed" in reply.text
        assert reply.private
    assert await snapshot(redis_url) == before


async def test_a_long_message_is_cut_before_anything_reads_it(
        pipeline: CommandPipeline) -> None:
    recorder = Recorder()
    pipeline.router.observers.append(recorder)
    for text in ("do you ship to Canada? " * 5000, "x" * 100_000):
        assert await pipeline.handle(_inbound(text, role=Privilege.MEMBER)) == []
    await pipeline.router.drain()
    assert [len(t) <= LIMIT for t in recorder.seen] == [True, True]
    assert recorder.seen[0].startswith("do you ship to Canada?")
    assert not recorder.seen[0].endswith(" do")  # cut at a space, not inside a word
    assert len(recorder.seen[1]) == LIMIT


async def test_a_huge_message_costs_what_a_long_one_does(pipeline: CommandPipeline) -> None:
    """The cut comes first, so 100 kB costs no more than the longest allowed message (CPU
    time of this process, best of three: other engineers' load does not count)."""
    pipeline.router.observers.append(Recorder())

    async def cost(text: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            await pipeline.handle(_inbound(text, role=Privilege.MEMBER))
            best = min(best, time.process_time() - start)
        return max(best, 1e-4)

    hostile = "a-" * 50_000 + "@" + "1 " * 50_000
    ratio = await cost(hostile) / await cost(hostile[:LIMIT])
    assert ratio < 3, ratio


@pytest.mark.parametrize("text", [
    "/quote @everyone free tents", "/quote hi @here and <@123> and <@!456> and <@&789>",
    "/nosuch @everyone <@123>", "/persona set @everyone <@&5>", "/helpchannel @here",
    "/persona show <@!1>", "/help @everyone", "/persona set name @everyone",
])
@pytest.mark.parametrize("role", [Privilege.MEMBER, Privilege.MODERATOR])
async def test_every_reply_passes_the_mention_guard(pipeline: CommandPipeline, text: str,
                                                    role: Privilege) -> None:
    replies = await pipeline.handle(_inbound(text, Platform.DISCORD, role))
    assert replies
    for reply in replies:
        lowered = reply.text.lower()
        assert "@everyone" not in lowered and "@here" not in lowered, reply.text
        assert "<@" not in reply.text, reply.text


async def test_a_guarded_reply_still_says_what_it_would(pipeline: CommandPipeline) -> None:
    [reply] = await pipeline.handle(_inbound("/quote ping @everyone and <@123>",
                                             Platform.DISCORD))
    assert reply.text == "you said: ping everyone and (mention)"


async def _count(ctx: CommandContext) -> str:
    return f"{ctx.args['n']} x {ctx.args['f']}"


COUNT = CommandSpec("count", "Take a whole number and a number.", _count,
                    args=(Arg("n", ArgKind.INT), Arg("f", ArgKind.FLOAT)))


@pytest.mark.parametrize(("text", "error"), [
    ("/count " + "9" * 3900 + " 1", "/count: n must be a whole number of at most 15 digits."),
    ("/count 99999999999999999999 1", "/count: n must be a whole number of at most 15 digits."),
    ("/count 1 1e999", "/count: f must be a finite number, not '1e999'."),
    ("/count 1 nan", "/count: f must be a finite number, not 'nan'."),
    ("/count 1 " + "x" * 3000, "/count: f must be a number, not '" + "x" * 38 + "..."),
])
async def test_numbers_out_of_range_get_a_short_clear_error(redis_url: str, redis_client: object,
                                                            text: str, error: str) -> None:
    pipe = CommandPipeline(redis_url, extra=[COUNT])
    await pipe.start()
    try:
        before = await snapshot(redis_url)
        [reply] = await pipe.handle(_inbound(text))
        assert reply.text.startswith(error), reply.text
        assert len(reply.text) < 300
        assert await snapshot(redis_url) == before
        [ok] = await pipe.handle(_inbound("/count 123456789012345 2.5"))
        assert ok.text == "123456789012345 x 2.5"
    finally:
        await pipe.stop()
