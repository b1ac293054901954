"""The bot on remote LM workers: the worker answering members is SIGKILLed mid-generation;
another takes the work over and every member gets exactly one real answer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.events import Privilege
from bot.settings import load_settings
from lm_service import wire
from lm_service.api import LMClient, Priority
from lm_service.worker import LMWorker
from tests.faults.support import GENERIC_ERROR, sample

ROOT = Path(__file__).resolve().parents[2]
FAQ = (
    ("family-tent", "Which tent suits a family of four?",
     "The Basecamp 4P sleeps four, with two doors and a big vestibule for boots and packs."),
    ("down-wash", "How should I wash a down jacket?",
     "Wash it cold on a gentle cycle with down soap, then tumble dry low with dryer balls."),
    ("winter-stove", "What stove is best for winter camping?",
     "The Summit liquid-fuel stove: white gas keeps its pressure well below freezing."),
)
QUESTIONS = tuple(question for _, question, _ in FAQ)


def _worker_process(redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    with open(log, "w") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "lm_service.worker", "--redis-url", redis_url,
             "--model-cache", str(cache), "--claim-idle-s", "2", "--max-batch", "4"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)


async def _generating(redis: aioredis.Redis) -> int:
    """Generation requests a worker has taken and not yet acknowledged."""
    stream = wire.request_stream(Priority.INTERACTIVE)
    try:
        pending = await redis.xpending_range(stream, wire.GROUP, "-", "+", 100)
    except aioredis.ResponseError:  # no group yet
        return 0
    count = 0
    for item in pending:
        entries = await redis.xrange(stream, item["message_id"], item["message_id"])
        count += sum(1 for _, fields in entries if fields.get("kind") == "generate")
    return count


async def test_worker_killed_mid_answer_another_finishes_each_once(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    first = _worker_process(redis_url, tmp_path / "worker.log")
    console = ConsoleAdapter(interactive=False)
    settings = load_settings(redis_url=redis_url, data_dir=tmp_path, demo_shop=False,
                             lm_backend="remote", lm_timeout_s=150, reply_mode="generate",
                             # every answer waits for its generation: on a loaded machine the
                             # 3 s default would quote the source before the kill
                             reply_generate_deadline_s=140)
    app = App(settings, adapters=[console])  # the App builds its own remote client
    stop = asyncio.Event()
    survivor: asyncio.Task[Any] | None = None
    await app.start()
    try:
        # Stored through the first worker (embeddings), before the members ask.
        for entry_id, question, answer in FAQ:
            added = await console.say(f'/faq add {entry_id} "{question}" {answer}',
                                      role=Privilege.ADMIN)
            assert "nothing" not in added[0].text.lower(), added[0].text
        ok_before = sample("shopkeep_replies_total", platform="console", outcome="ok")
        asking = [asyncio.create_task(console.say(q, user=f"m{i}"))
                  for i, q in enumerate(QUESTIONS)]
        for _ in range(3000):  # until the worker has taken a generation
            if await _generating(redis_client) or first.poll() is not None:
                break
            await asyncio.sleep(0.02)
        if not await _generating(redis_client):
            pytest.fail("the worker never took a generation: "
                        + (tmp_path / "worker.log").read_text()[-2000:])
        # Killed as soon as it holds a generation: with a batch of 64 a quiet machine could
        # finish all three answers within the half second this test used to wait.
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert not any(task.done() for task in asking), "answered before the kill"
        worker = LMWorker(redis_client, lm_client, name="survivor", claim_idle_s=2)
        survivor = asyncio.create_task(worker.run(stop))
        replies = await asyncio.wait_for(asyncio.gather(*asking), 170)
        await app.router.drain()
    finally:
        stop.set()
        if survivor is not None:
            await asyncio.wait_for(survivor, 30)
        if first.poll() is None:
            first.kill()
            first.wait()
        await app.stop()
    assert [len(r) for r in replies] == [1, 1, 1]  # messages in = answers out
    texts = [r[0].text for r in replies]
    assert all(t.strip() and GENERIC_ERROR not in t and "too long" not in t for t in texts)
    assert sample("shopkeep_replies_total", platform="console", outcome="ok") - ok_before == 3
    for stream in wire.STREAMS:  # every request acknowledged once and removed
        assert await redis_client.xlen(stream) == 0
