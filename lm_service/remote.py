"""`RedisLMClient`: the LM service over Redis Streams, served by `shopkeep lm-worker` processes.

A request is one stream entry (the stream of its priority). The worker that takes it pushes
events to the reply list `sk:lm:reply:{id}`: deltas carrying their offset in the answer, then
one final event, stored together with the acknowledgement in one atomic script and only if no
other worker answered first. A worker that takes over a dead worker's request starts again
from offset 0; the client skips what it already has, so a stream reads as one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

from redis import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from lm_service import wire
from lm_service.api import (
    GenerationRequest,
    LMBusy,
    LMError,
    LMTimeout,
    LMUnavailable,
)
from lm_service.streaming import EventClient

_GRACE_S = 2.0


class RedisLMClient(EventClient):
    """Sends requests to LM workers through Redis.

    Args:
        redis: a `redis.asyncio.Redis` with decode_responses=True.
        timeout_s: the default deadline of a request.
        max_queue: more requests than this waiting in a priority's stream → `LMBusy`.
        embed_timeout_s: how long `embed()` waits.
    """

    def __init__(self, redis: Any, timeout_s: float = 30.0, max_queue: int = 256,
                 embed_timeout_s: float | None = None) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self.max_queue = max_queue
        self.embed_timeout_s = embed_timeout_s or timeout_s

    async def start(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise LMUnavailable(f"Redis for the LM workers cannot be reached: {exc}") from exc

    async def stop(self) -> None:
        return None  # the Redis connection belongs to whoever passed it in

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        import uuid

        request_id = uuid.uuid4().hex
        fields = {"id": request_id, "kind": "embed", "texts": json.dumps(texts),
                  "deadline": str(time.time() + self.embed_timeout_s)}
        async for event in self._submit_and_read(request_id, wire.STREAMS[0], fields,
                                                 self.embed_timeout_s):
            if event["t"] == "done":
                return list(event["vectors"])
        raise LMError("the worker sent no embedding")  # pragma: no cover

    async def _events(
        self, request: GenerationRequest, wants_deltas: bool
    ) -> AsyncGenerator[tuple[str, Any], None]:
        timeout = request.deadline_s if request.deadline_s is not None else self.timeout_s
        fields = {"id": request.request_id, "kind": "generate",
                  "request": wire.dump_request(request), "stream": "1" if wants_deltas else "0",
                  "deadline": str(time.time() + timeout)}
        stream = wire.request_stream(request.priority)
        received = 0
        async for event in self._submit_and_read(request.request_id, stream, fields, timeout):
            if event["t"] == "delta":
                text, offset = event["x"], int(event["o"])
                if offset + len(text) > received:  # a take-over repeats what we have
                    fresh = text[max(0, received - offset):]
                    received = offset + len(text)
                    yield "delta", fresh
            elif event["t"] == "done":
                result = wire.load_result(event["result"])
                if wants_deltas and len(result.text) > received:
                    yield "delta", result.text[received:]
                yield "done", result

    async def _submit_and_read(
        self, request_id: str, stream: str, fields: dict[str, str], wait_s: float
    ) -> AsyncGenerator[dict[str, Any], None]:
        redis = self.redis
        deadline = time.monotonic() + wait_s + _GRACE_S
        reply = wire.reply_key(request_id)
        finished = False
        try:
            try:
                if await redis.xlen(stream) >= self.max_queue:
                    raise LMBusy(f"the LM workers' queue is full ({self.max_queue} waiting)")
                await redis.xadd(stream, fields)
            except (RedisError, OSError) as exc:
                raise LMUnavailable(f"cannot queue the LM request: {exc}") from exc
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LMTimeout("no LM worker answered in time")
                try:
                    # Short blocks: a connection's socket timeout must not be reached.
                    item = await redis.blpop([reply], timeout=min(left, 1.0))
                except RedisTimeout:
                    continue
                except (RedisError, OSError) as exc:
                    raise LMUnavailable(f"lost Redis while waiting for the answer: {exc}") from exc
                if item is None:
                    continue
                event = json.loads(item[1])
                if event["t"] == "error":
                    finished = True
                    raise wire.load_error(event)
                yield event
                if event["t"] == "done":
                    finished = True
                    with contextlib.suppress(RedisError, OSError):
                        await redis.delete(reply)
                    return
        finally:
            if not finished:  # nobody waits any more: tell the worker to drop it
                with contextlib.suppress(RedisError, OSError, asyncio.CancelledError):
                    await asyncio.shield(
                        redis.set(wire.cancel_key(request_id), "1", ex=wire.REPLY_TTL_S)
                    )
