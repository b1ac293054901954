"""Remote workers over Redis Streams, on a real Redis and the real model: round trips,
embeddings, and a worker killed mid-request whose request another worker finishes, answered
exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ResponseError

from lm_service import wire
from lm_service.api import ChatMessage, GenerationRequest, Priority
from lm_service.local import InProcessLMClient
from lm_service.remote import RedisLMClient
from lm_service.worker import LMWorker

REPO = Path(__file__).resolve().parents[2]


def ask(text: str, tokens: int = 16, **extra: Any) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage("user", text),), max_new_tokens=tokens, **extra)


@contextlib.asynccontextmanager
async def worker(redis: Any, lm: InProcessLMClient, name: str,
                 claim_idle_s: float = 15.0) -> AsyncIterator[LMWorker]:
    stop = asyncio.Event()
    serving = LMWorker(redis, lm, name=name, max_inflight=8, claim_idle_s=claim_idle_s)
    task = asyncio.create_task(serving.run(stop))
    try:
        yield serving
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_round_trip_and_embeddings(redis_client: Any, lm: InProcessLMClient) -> None:
    client = RedisLMClient(redis_client, timeout_s=60)
    await client.start()
    async with worker(redis_client, lm, "w1"):
        request = ask("What is a tent?", tokens=12, priority=Priority.CAMPAIGN)
        result = await client.generate(request)
        assert result.text == (await lm.generate(request)).text
        assert result.completion_tokens > 0
        parts = [p async for p in client.stream(ask("What is a tent?", tokens=12))]
        assert "".join(parts) == result.text
        vectors = await client.embed(["a tent", "a tent", "tax law"])
        assert vectors[0] == vectors[1] and len(vectors[2]) == 384
    for stream in wire.STREAMS:  # acknowledged and deleted
        assert await redis_client.xlen(stream) == 0


def _start_worker(redis_url: str, cache: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "w") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "lm_service.worker", "--redis-url", redis_url,
             "--model-cache", str(cache), "--claim-idle-s", "2", "--max-batch", "4"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors,
        )


async def test_killed_worker_request_is_finished_by_another_once(
    redis_url: str, redis_client: Any, lm: InProcessLMClient, tmp_path: Path
) -> None:
    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    first = _start_worker(redis_url, cache, tmp_path / "worker.log")
    client = RedisLMClient(redis_client, timeout_s=120)
    request = ask("Describe a family tent in detail.", tokens=120)
    try:
        answer = asyncio.create_task(client.generate(request))
        reply = wire.reply_key(request.request_id)
        stream = wire.request_stream(request.priority)
        for _ in range(1200):  # until the first worker holds the request
            if await _pending(redis_client, stream):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the first worker never took the request: "
                        + (tmp_path / "worker.log").read_text()[-2000:])
        await asyncio.sleep(0.5)  # it is generating now
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert not answer.done()
        async with worker(redis_client, lm, "w2", claim_idle_s=2):
            result = await asyncio.wait_for(answer, 120)
        assert result.text == (await lm.generate(request)).text
        assert await redis_client.exists(wire.done_key(request.request_id)) == 1
        assert await redis_client.llen(reply) == 0  # one final event, taken by the client
        assert await _pending(redis_client, stream) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


async def _pending(redis: Any, stream: str) -> int:
    try:
        return int((await redis.xpending(stream, wire.GROUP))["pending"])
    except ResponseError:  # no group yet
        return 0


async def test_takeover_of_a_stream_reads_as_one_answer(
    redis_client: Any, lm: InProcessLMClient
) -> None:
    """A dead worker's deltas are not repeated when the next worker starts over."""
    request = ask("Name three camping items.", tokens=16)
    expected = (await lm.generate(request)).text
    reply = wire.reply_key(request.request_id)
    # What a worker that died after two deltas left behind:
    await redis_client.rpush(reply, json.dumps({"t": "delta", "o": 0, "x": expected[:5]}),
                             json.dumps({"t": "delta", "o": 5, "x": expected[5:9]}))
    client = RedisLMClient(redis_client, timeout_s=60)
    async with worker(redis_client, lm, "w3"):
        parts = [p async for p in client.stream(request)]
    assert "".join(parts) == expected
