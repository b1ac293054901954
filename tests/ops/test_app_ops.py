"""The ops parts inside a whole App with the real model: readiness, LM metrics, and a graceful
stop that lets work in flight finish but never outlives its bound."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from adapters.console import ConsoleAdapter
from bot.commands.registry import CommandContext, CommandSpec
from bot.ops.server import OpsFeature
from bot.ops.shutdown import graceful_stop
from lm_service.api import ChatMessage, GenerationRequest, LMClient
from tests.faults.support import sample
from tests.support.harness import running_app
from tests.support.redis_server import free_port


async def _get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_ready_with_redis_and_the_model_and_lm_calls_are_measured(
        redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient) -> None:
    port = free_port()
    async with running_app(redis_url, tmp_path, lm_client, metrics_port=port) as app:
        status, body = await _get_json(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and body["checks"] == {"redis": True, "lm": True}
        before = {
            "tokens": sample("shopkeep_lm_tokens_total", direction="completion"),
            "ok": sample("shopkeep_lm_requests_total", kind="generate", outcome="ok"),
            "embeds": sample("shopkeep_lm_requests_total", kind="embed", outcome="ok"),
        }
        result = await app.lm.generate(GenerationRequest(
            (ChatMessage("user", "Say hello in three words."),), max_new_tokens=8))
        await app.lm.embed(["a tent for two", "a warm sleeping bag"])
        assert sample("shopkeep_lm_tokens_total",
                      direction="completion") - before["tokens"] == result.completion_tokens > 0
        assert sample("shopkeep_lm_requests_total", kind="generate",
                      outcome="ok") - before["ok"] == 1
        assert sample("shopkeep_lm_requests_total", kind="embed", outcome="ok") - before[
            "embeds"] == 1
        assert sample("shopkeep_lm_queue_depth") == 0
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        assert 'shopkeep_lm_requests_total{kind="generate",outcome="ok"}' in text


async def test_the_batch_size_of_each_answer_is_measured(
        redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient) -> None:
    async with running_app(redis_url, tmp_path, lm_client) as app:
        count = sample("shopkeep_lm_batch_size_count")
        total = sample("shopkeep_lm_batch_size_sum")
        results = await asyncio.gather(*(app.lm.generate(GenerationRequest(
            (ChatMessage("user", f"Name {n} colours."),), max_new_tokens=12)) for n in range(3)))
        sizes = [r.batch_size for r in results]
        assert all(1 <= size <= 3 for size in sizes) and max(sizes) >= 2  # decoded together
        assert sample("shopkeep_lm_batch_size_count") - count == 3
        assert sample("shopkeep_lm_batch_size_sum") - total == sum(sizes)


async def test_graceful_stop_lets_the_message_in_flight_finish(
        redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient) -> None:
    started = asyncio.Event()

    async def slow(ctx: CommandContext) -> str:
        started.set()
        await asyncio.sleep(1.0)
        return "finished the slow job"

    console = ConsoleAdapter(interactive=False)
    port = free_port()
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console],
                           metrics_port=port) as app:
        app.registry.register(CommandSpec("slowjob", "test", slow))
        asking = asyncio.create_task(console.say("/slowjob"))
        await started.wait()
        stopping = asyncio.create_task(graceful_stop(app, timeout_s=10))
        await asyncio.sleep(0.1)
        ops = next(f for f in app.features if isinstance(f, OpsFeature))
        status, body = await _get_json(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body["draining"] is True  # routers stop sending work
        assert [r.text for r in await asyncio.wait_for(asyncio.shield(asking), 5)] == [
            "finished the slow job"]
        assert await stopping is True
        assert ops.server is not None and ops.server.draining


async def test_graceful_stop_gives_up_at_its_bound(
        redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient) -> None:
    async def hang(ctx: CommandContext) -> str:
        await asyncio.sleep(3600)
        return "never"

    console = ConsoleAdapter(interactive=False)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]) as app:
        app.registry.register(CommandSpec("hang", "test", hang))
        stuck = asyncio.create_task(console.say("/hang"))
        await asyncio.sleep(0.1)
        began = time.monotonic()
        clean = await graceful_stop(app, timeout_s=1.0)
        took = time.monotonic() - began
        assert clean is False and 1.0 <= took < 2.0
        assert app.router.meter.inflight == 1  # abandoned, and said so in the log
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
    # Leaving `running_app` stops what the abandoned stop did not reach.
