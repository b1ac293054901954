"""`shopkeep lm-worker`: serve LM requests from the Redis Streams group with a local engine.

Exactly one answer per request: the final event is pushed, the request acknowledged and
deleted in one Lua script that does nothing but acknowledge when `sk:lm:done:{id}` was
already set. A worker that dies leaves its requests pending; every worker runs XAUTOCLAIM
for requests idle longer than `claim_idle_s` and serves them again, while a live worker keeps
its own requests fresh with XCLAIM heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from redis import RedisError
from redis.exceptions import ResponseError

from lm_service import wire
from lm_service.api import LMError, LMTimeout

log = logging.getLogger(__name__)

_FINISH = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
redis.call('XACK', KEYS[3], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[3], ARGV[4])
return 1
"""


class LMWorker:
    """Consumes the request streams and answers through `client` (an `InProcessLMClient`).

    Args:
        redis: `redis.asyncio.Redis` with decode_responses=True.
        client: the started local client that does the work.
        name: this consumer's name in the group (unique per process).
        max_inflight: requests worked on at once (the engine batches them).
        claim_idle_s: a request pending this long with no heartbeat is taken over.
    """

    def __init__(self, redis: Any, client: Any, name: str | None = None,
                 max_inflight: int = 16, claim_idle_s: float = 15.0) -> None:
        self.redis = redis
        self.client = client
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.max_inflight = max_inflight
        self.claim_idle_s = claim_idle_s
        self._tasks: dict[asyncio.Task[None], tuple[str, str]] = {}
        self._finish = redis.register_script(_FINISH)

    async def ensure_groups(self) -> None:
        for stream in wire.STREAMS:
            try:
                await self.redis.xgroup_create(stream, wire.GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; then finish what is in hand."""
        await self.ensure_groups()
        heartbeat = asyncio.create_task(self._heartbeat(stop))
        last_claim = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - last_claim >= min(self.claim_idle_s / 2, 5.0):
                        last_claim = time.monotonic()
                        await self._reclaim()
                    await self._read(stop)
                except (RedisError, OSError) as exc:
                    log.warning("lm-worker: Redis error, retrying: %s", exc)
                    await _sleep_or_stop(stop, 1.0)
            if self._tasks:
                await asyncio.wait(list(self._tasks))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _read(self, stop: asyncio.Event) -> None:
        free = self.max_inflight - len(self._tasks)
        if free <= 0:
            await asyncio.wait(list(self._tasks), timeout=0.5,
                               return_when=asyncio.FIRST_COMPLETED)
            return
        for stream in wire.STREAMS:  # most urgent first, without waiting
            got = await self.redis.xreadgroup(wire.GROUP, self.name, {stream: ">"}, count=free)
            if got:
                self._spawn(got)
                return
        got = await self.redis.xreadgroup(
            wire.GROUP, self.name, dict.fromkeys(wire.STREAMS, ">"), count=1, block=500
        )
        if got:
            self._spawn(got)

    async def _reclaim(self) -> None:
        idle_ms = int(self.claim_idle_s * 1000)
        for stream in wire.STREAMS:
            free = self.max_inflight - len(self._tasks)
            if free <= 0:
                return
            reply = await self.redis.xautoclaim(
                stream, wire.GROUP, self.name, min_idle_time=idle_ms, start_id="0-0", count=free
            )
            claimed = [entry for entry in reply[1] if entry and entry[1]]
            if claimed:
                log.info("lm-worker %s took over %d request(s) from %s", self.name,
                         len(claimed), stream)
                self._spawn([[stream, claimed]])

    def _spawn(self, batches: Any) -> None:
        for stream, entries in batches:
            for message_id, fields in entries:
                if not fields:
                    continue
                task = asyncio.create_task(self._handle(stream, message_id, fields))
                self._tasks[task] = (stream, message_id)
                task.add_done_callback(self._tasks.pop)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Keep our pending requests' idle time low so nobody takes them over."""
        while not stop.is_set():
            await asyncio.sleep(max(self.claim_idle_s / 3, 0.2))
            by_stream: dict[str, list[str]] = {}
            for stream, message_id in list(self._tasks.values()):
                by_stream.setdefault(stream, []).append(message_id)
            for stream, ids in by_stream.items():
                with contextlib.suppress(RedisError, OSError):
                    await self.redis.xclaim(stream, wire.GROUP, self.name, 0, ids, justid=True)

    async def _handle(self, stream: str, message_id: str, fields: dict[str, str]) -> None:
        request_id = fields.get("id", message_id)
        try:
            if await self.redis.exists(wire.done_key(request_id)):
                await self._answer(stream, message_id, request_id, None)  # ack only
                return
            if time.time() > float(fields.get("deadline", "inf")):
                raise LMTimeout("the deadline passed before a worker took the request")
            if fields.get("kind") == "embed":
                vectors = await self.client.embed(json.loads(fields["texts"]))
                await self._answer(stream, message_id, request_id,
                                   {"t": "done", "vectors": vectors})
            else:
                await self._generate(stream, message_id, request_id, fields)
        except LMError as exc:
            await self._answer(stream, message_id, request_id, wire.error_event(exc))
        except (RedisError, OSError) as exc:
            log.warning("lm-worker: Redis failed during %s; it will be retried: %s",
                        request_id, exc)
        except Exception as exc:
            log.exception("lm-worker: request %s failed", request_id)
            await self._answer(stream, message_id, request_id,
                               wire.error_event(LMError(f"the worker failed: {exc}")))

    async def _generate(self, stream: str, message_id: str, request_id: str,
                        fields: dict[str, str]) -> None:
        request = wire.stable_seed(wire.load_request(fields["request"]))
        left = float(fields.get("deadline", "inf")) - time.time()
        if left != float("inf"):
            import dataclasses

            request = dataclasses.replace(request, deadline_s=max(left, 0.01))
        streaming = fields.get("stream") == "1"
        reply = wire.reply_key(request_id)
        offset = 0
        checked = time.monotonic()
        async with contextlib.aclosing(self.client.events(request, streaming)) as events:
            async for kind, value in events:
                if kind == "delta":
                    event = {"t": "delta", "o": offset, "x": value}
                    offset += len(value)
                    await self.redis.rpush(reply, json.dumps(event))
                    if time.monotonic() - checked > 0.5:
                        checked = time.monotonic()
                        if await self.redis.exists(wire.cancel_key(request_id)):
                            raise LMTimeout("the caller stopped waiting")
                elif kind == "done":
                    await self._answer(stream, message_id, request_id,
                                       {"t": "done", "result": wire.dump_result(value)})

    async def _answer(self, stream: str, message_id: str, request_id: str,
                      event: dict[str, Any] | None) -> None:
        payload = json.dumps(event) if event is not None else ""
        if event is None:
            await self.redis.xack(stream, wire.GROUP, message_id)
            await self.redis.xdel(stream, message_id)
            return
        await self._finish(
            keys=[wire.done_key(request_id), wire.reply_key(request_id), stream],
            args=[payload, wire.REPLY_TTL_S, wire.GROUP, message_id],
        )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_worker(settings: Any, redis_url: str, stop_event: asyncio.Event | None = None,
                     serving: asyncio.Event | None = None) -> None:
    """Load the models and serve the request streams until `stop_event` is set.

    Args:
        settings: `bot.settings.Settings` (its lm_* fields and data_dir are used).
        redis_url: the Redis server the bot and the workers share.
        stop_event: set it to stop (the CLI sets it on SIGINT/SIGTERM).
        serving: set while the models are loaded and requests are served (for /readyz).
    """
    import redis.asyncio as aioredis

    from lm_service.local import InProcessLMClient

    stop = stop_event or asyncio.Event()
    client = InProcessLMClient.from_settings(settings)
    await client.start()
    redis = aioredis.from_url(redis_url, decode_responses=True)
    worker = LMWorker(
        redis, client,
        max_inflight=max(1, int(getattr(settings, "lm_max_batch", 16))),
        claim_idle_s=float(getattr(settings, "lm_claim_idle_s", 15.0)),
    )
    log.info("lm-worker %s serving %s", worker.name, redis_url.split("@")[-1])
    if serving is not None:
        serving.set()
    try:
        await worker.run(stop)
    finally:
        if serving is not None:
            serving.clear()
        await redis.aclose()
        await client.stop()


def main() -> None:  # pragma: no cover - `python -m lm_service.worker` for tests and ops
    import argparse
    import signal
    from types import SimpleNamespace

    parser = argparse.ArgumentParser(description="Serve LM requests from Redis Streams.")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--model-cache", type=Path, default=Path("var") / "models")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--claim-idle-s", type=float, default=15.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    settings = SimpleNamespace(
        lm_model=None, embed_model=None, lm_dtype="auto", lm_threads=None,
        lm_max_batch=args.max_batch, lm_max_queue=256, lm_timeout_s=30.0,
        data_dir=Path("var"), lm_model_cache=args.model_cache,
        lm_claim_idle_s=args.claim_idle_s,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, args.redis_url, stop)

    asyncio.run(serve())


if __name__ == "__main__":  # pragma: no cover
    main()
