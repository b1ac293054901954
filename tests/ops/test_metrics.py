"""The router's meter: messages counted in and out by outcome, correlation ids, in-flight."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

from bot.commands.registry import CommandContext, CommandSpec
from bot.events import Inbound, MemberRef, Platform
from bot.logs import correlation_id, make_handler
from tests.faults.support import CommandPipeline, sample


def _inbound(text: str, platform: Platform = Platform.TELEGRAM) -> Inbound:
    return Inbound(platform=platform, member=MemberRef(platform, "42", "Ann"), text=text,
                   mentions_bot=True)


async def test_messages_are_counted_by_platform_kind_and_outcome(redis_url: str,
                                                                 redis_sync: object) -> None:
    pipeline = CommandPipeline(redis_url)
    await pipeline.start()
    labels_in = {"platform": "telegram", "kind": "command"}
    before = {
        "in": sample("shopkeep_messages_in_total", **labels_in),
        "chatter": sample("shopkeep_messages_in_total", platform="telegram", kind="message"),
        "ok": sample("shopkeep_replies_total", platform="telegram", outcome="ok"),
        "user_error": sample("shopkeep_replies_total", platform="telegram",
                             outcome="user_error"),
        "silent": sample("shopkeep_replies_total", platform="telegram", outcome="silent"),
        "out": sample("shopkeep_messages_out_total", platform="telegram", source="reply"),
        "latency": sample("shopkeep_reply_latency_seconds_count", **labels_in),
    }
    try:
        assert (await pipeline.handle(_inbound("/help")))[0].text.startswith("Commands")
        assert "don't know" in (await pipeline.handle(_inbound("/nosuch")))[0].text
        await pipeline.handle(_inbound("/persona show"))  # a member may not: user_error
        assert await pipeline.handle(_inbound("just chatting")) == []  # no conversation here
    finally:
        await pipeline.stop()
    assert sample("shopkeep_messages_in_total", **labels_in) - before["in"] == 3
    assert sample("shopkeep_messages_in_total", platform="telegram",
                  kind="message") - before["chatter"] == 1
    assert sample("shopkeep_replies_total", platform="telegram", outcome="ok") - before["ok"] == 1
    assert sample("shopkeep_replies_total", platform="telegram",
                  outcome="user_error") - before["user_error"] == 2
    assert sample("shopkeep_replies_total", platform="telegram",
                  outcome="silent") - before["silent"] == 1
    assert sample("shopkeep_messages_out_total", platform="telegram",
                  source="reply") - before["out"] == 3
    assert sample("shopkeep_reply_latency_seconds_count", **labels_in) - before["latency"] == 3
    assert sample("shopkeep_messages_inflight") == 0


async def test_each_message_gets_its_own_correlation_id_in_json_logs(
        redis_url: str, redis_sync: object) -> None:
    seen: list[str] = []
    logger = logging.getLogger("shopkeep.test.correlation")

    async def probe(ctx: CommandContext) -> str:
        await asyncio.sleep(0.01)  # overlap the two messages
        seen.append(correlation_id.get())
        logger.info("probe ran", extra={"member": ctx.member_key})
        return "ok"

    buffer = io.StringIO()
    handler = make_handler(buffer, json_lines=True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    pipeline = CommandPipeline(redis_url, extra=[CommandSpec("probe", "test", probe)])
    await pipeline.start()
    try:
        await asyncio.gather(pipeline.handle(_inbound("/probe")),
                             pipeline.handle(_inbound("/probe")))
    finally:
        logger.removeHandler(handler)
        await pipeline.stop()
    assert len(set(seen)) == 2 and "-" not in seen
    assert correlation_id.get() == "-"  # reset after each message
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["probe ran", "probe ran"]
    assert sorted(line["correlation_id"] for line in lines) == sorted(seen)
    assert [line["member"] for line in lines] == ["telegram:42", "telegram:42"]


async def test_drain_waits_for_messages_in_flight(redis_url: str, redis_sync: object) -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def slow(ctx: CommandContext) -> str:
        await release.wait()
        finished.append("slow")
        return "done"

    pipeline = CommandPipeline(redis_url, extra=[CommandSpec("slow", "test", slow)])
    await pipeline.start()
    try:
        task = asyncio.create_task(pipeline.handle(_inbound("/slow")))
        await asyncio.sleep(0.05)
        assert pipeline.router.meter.inflight == 1
        assert sample("shopkeep_messages_inflight") == 1
        drain = asyncio.create_task(pipeline.router.drain())
        await asyncio.sleep(0.05)
        assert not drain.done()
        release.set()
        await asyncio.wait_for(drain, 2)
        assert finished == ["slow"] and (await task)[0].text == "done"
    finally:
        await pipeline.stop()


async def test_a_blocked_event_loop_shows_in_the_lag_metric() -> None:
    from bot.ops.metrics import watch_event_loop

    count = sample("shopkeep_event_loop_lag_seconds_count")
    total = sample("shopkeep_event_loop_lag_seconds_sum")
    watcher = asyncio.create_task(watch_event_loop(interval_s=0.05))
    await asyncio.sleep(0.12)
    time.sleep(0.3)  # noqa: ASYNC251 -- on purpose: a blocking call in a handler
    await asyncio.sleep(0.12)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    assert sample("shopkeep_event_loop_lag_seconds_count") - count >= 3
    assert 0.25 <= sample("shopkeep_event_loop_lag_seconds_sum") - total < 0.6
