"""Readiness: requests that arrive while a model loads wait for it instead of failing.

Each test starts its own engine (the session's shared one has long finished loading), from
the session's converted-model cache so that loading takes seconds.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lm_service.api import ChatMessage, GenerationRequest, LMUnavailable
from lm_service.local import InProcessLMClient
from lm_service.remote import RedisLMClient
from lm_service.worker import run_worker


def _fresh_client(**options: object) -> InProcessLMClient:
    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    return InProcessLMClient(cache_dir=cache, **options)  # type: ignore[arg-type]


def _question(text: str) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage("user", text),), max_new_tokens=8,
                             deadline_s=120.0)


async def test_embeds_sent_while_the_embedder_loads_all_get_vectors() -> None:
    client = _fresh_client(timeout_s=120.0)
    await client.start()  # the generator is loaded; the embedder loads on first use
    try:
        assert client.engine.embedder is None
        first = asyncio.create_task(client.embed(["do you ship to Canada?"]))
        # Keep asking while the first request makes the engine load the embedder: every
        # one of these lands before, during or after the load, and each must be served.
        more: list[asyncio.Task[list[list[float]]]] = []
        while not first.done():
            more.append(asyncio.create_task(client.embed([f"question {len(more)}"])))
            await asyncio.sleep(0.005)
        results = await asyncio.gather(first, *more, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], f"{len(failures)} of {len(results)} failed: {failures[:1]}"
        assert len(more) >= 3  # the load took long enough for requests to arrive during it
        assert all(len(r[0]) == 384 for r in results if not isinstance(r, BaseException))
    finally:
        await client.stop()


async def test_requests_sent_while_the_client_starts_are_served() -> None:
    client = _fresh_client(timeout_s=120.0)
    starting = asyncio.create_task(client.start())
    await asyncio.sleep(0)  # start() has begun: the engine thread is loading the models
    answer, vectors = await asyncio.gather(client.generate(_question("Say hello.")),
                                           client.embed(["hello"]))
    await starting
    try:
        assert answer.text.strip() and answer.completion_tokens > 0
        assert len(vectors) == 1 and len(vectors[0]) == 384
    finally:
        await client.stop()


async def test_a_client_never_started_fails_at_once() -> None:
    client = _fresh_client()
    with pytest.raises(LMUnavailable, match="not started"):
        await client.embed(["hello"])
    with pytest.raises(LMUnavailable, match="not started"):
        await client.generate(_question("hello"))


async def test_a_failed_embedder_load_fails_the_waiting_requests(tmp_path: Path) -> None:
    # An empty folder passes the start-up check (the embedder loads on first use) and then
    # fails to load: the requests waiting for it must fail at once, not time out.
    client = _fresh_client(embed_model=tmp_path, timeout_s=60.0)
    await client.start()
    try:
        results = await asyncio.gather(client.embed(["a"]), client.embed(["b"]),
                                       return_exceptions=True)
        assert all(isinstance(r, LMUnavailable) for r in results), results
        assert all("failed to load" in str(r) for r in results)
    finally:
        await client.stop()


async def test_remote_requests_sent_before_the_worker_loads_are_served(
    redis_url: str, redis_client: Any
) -> None:
    """The bot is up before its lm-worker: what it asks waits in the stream (bounded by the
    deadline) and is answered once the worker has loaded, embeddings included (the worker's
    embedder loads on the first embedding, while requests keep coming)."""
    client = RedisLMClient(redis_client, timeout_s=120.0)
    await client.start()
    answer = asyncio.create_task(client.generate(_question("Say hello.")))
    first = asyncio.create_task(client.embed(["hello"]))
    await asyncio.sleep(0.2)  # queued before any worker exists
    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    settings = SimpleNamespace(
        lm_model=None, embed_model=None, lm_dtype="auto", lm_threads=None, lm_max_batch=4,
        lm_max_queue=256, lm_timeout_s=120.0, data_dir=cache.parent, lm_model_cache=cache,
        lm_claim_idle_s=15.0,
    )
    stop, serving = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, redis_url, stop, serving))
    outcomes: list[list[list[float]] | BaseException] = []

    async def keep_asking(sender: int) -> None:
        # From the moment the worker serves (the first embedding, queued earlier, is loading
        # its embedder), staggered, until that first one is answered: during the loading.
        await serving.wait()
        await asyncio.sleep(0.03 * sender)
        asked = 0
        while not first.done() or not asked:
            asked += 1
            try:
                outcomes.append(await client.embed([f"question {sender}.{asked}"]))
            except Exception as exc:
                outcomes.append(exc)

    try:
        senders = [asyncio.create_task(keep_asking(i)) for i in range(6)]
        generated, vectors = await asyncio.wait_for(asyncio.gather(answer, first), 240)
        await asyncio.wait_for(asyncio.gather(*senders), 240)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
    failures = [r for r in outcomes if isinstance(r, BaseException)]
    assert failures == [], f"{len(failures)} of {len(outcomes)} failed: {failures[:1]}"
    assert generated.text.strip() and generated.completion_tokens > 0
    assert len(vectors) == 1 and len(vectors[0]) == 384
    assert all(len(v) == 1 and len(v[0]) == 384 for v in outcomes)  # type: ignore[arg-type]
