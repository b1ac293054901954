"""`InProcessLMClient`: the asyncio face of the engine thread running in this process."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import weakref
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from lm_service.api import GenerationRequest, LMTimeout, LMUnavailable
from lm_service.streaming import EventClient

_GRACE_S = 5.0  # how much longer than the deadline the client waits for the engine's verdict


class _Outbox:
    """Hands events from the engine thread to one event loop, many per wake-up.

    A decode step produces an event for every running request; waking the loop once per
    step instead of once per event keeps the loop's thread from competing with the engine's
    threads for the cores.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: list[tuple[asyncio.Queue[tuple[str, Any]], tuple[str, Any]]] = []
        self._lock = threading.Lock()

    def put(self, queue: asyncio.Queue[tuple[str, Any]], event: tuple[str, Any]) -> None:
        with self._lock:
            self._items.append((queue, event))
            first = len(self._items) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody is listening
                with self._lock:
                    self._items.clear()

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for queue, event in items:
            queue.put_nowait(event)


_OUTBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = (
    weakref.WeakKeyDictionary()
)


def _outbox(loop: asyncio.AbstractEventLoop) -> _Outbox:
    box = _OUTBOXES.get(loop)
    if box is None:
        box = _OUTBOXES[loop] = _Outbox(loop)
    return box


class _QueueSink:
    """Carries one request's events from the engine thread into the caller's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wants_deltas: bool) -> None:
        self.outbox = _outbox(loop)
        self.wants_deltas = wants_deltas
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def delta(self, text: str) -> None:
        self.outbox.put(self.events, ("delta", text))

    def finish(self, result: Any) -> None:
        self.outbox.put(self.events, ("done", result))

    def fail(self, error: BaseException) -> None:
        self.outbox.put(self.events, ("error", error))


class InProcessLMClient(EventClient):
    """Generation and embeddings served by models loaded in this process.

    Construct it with explicit paths (tests) or `from_settings(settings)` (the bot); then
    `await start()` loads the models on the engine thread (torch is imported only then).

    Args:
        model: GGUF file or Hugging Face folder; None = `SHOPKEEP_LM_MODEL` or SmolLM2-135M.
        embed_model: sentence-transformers folder; None = all-MiniLM-L6-v2.
        generator / embedder: load only what is needed (the OpenAI backend embeds locally).
        **options: the other `EngineConfig` fields (dtype, threads, max_batch, max_queue,
            timeout_s, cache_dir, kv_budget_mb, prefill_tokens, embed_batch, preempt).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        embed_model: str | Path | None = None,
        *,
        generator: bool = True,
        embedder: bool = True,
        **options: Any,
    ) -> None:
        from lm_service.engine import EngineConfig

        self.config = EngineConfig(
            model=model, embed_model=embed_model, generator=generator, embedder=embedder,
            **options,
        )
        self.engine: Any = None
        self._loading: Any = None  # the engine between `start()` and its models being loaded

    @classmethod
    def from_settings(
        cls, settings: Any, *, generator: bool = True, embedder: bool = True
    ) -> InProcessLMClient:
        """Build from `bot.settings.Settings` (or anything with the same `lm_*` fields)."""
        return cls(
            settings.lm_model,
            settings.embed_model,
            generator=generator,
            embedder=embedder,
            dtype=settings.lm_dtype,
            threads=settings.lm_threads,
            max_batch=settings.lm_max_batch,
            max_queue=settings.lm_max_queue,
            timeout_s=settings.lm_timeout_s,
            cache_dir=getattr(settings, "lm_model_cache", None)
            or Path(settings.data_dir) / "models",
        )

    async def start(self) -> None:
        """Load the models (in the engine thread; the event loop keeps running).

        Raises:
            LMUnavailable: a model could not be loaded.
        """
        if self.engine is not None:
            return
        from lm_service.engine import Engine

        engine = self._loading = Engine(self.config)
        try:
            await asyncio.to_thread(engine.start)
            self.engine = engine
        finally:
            self._loading = None

    async def stop(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.to_thread(engine.stop)

    async def _require(self, wait_s: float) -> Any:
        """The running engine; while `start()` is still loading it, wait for it (at most
        `wait_s`): readiness is part of the API, a request sent early is served late.

        Raises:
            LMTimeout: the models did not load within `wait_s`.
            LMUnavailable: the client is not started, or loading failed.
        """
        deadline = time.monotonic() + wait_s
        while self.engine is None and self._loading is not None:
            if time.monotonic() >= deadline:
                raise LMTimeout("the language model is still loading")
            # Polled, not an asyncio event: start() may run on another event loop.
            await asyncio.sleep(0.05)
        if self.engine is None:
            raise LMUnavailable("the LM client is not started")
        return self.engine

    def events(
        self, request: GenerationRequest, wants_deltas: bool = True
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """("delta", text) events (when `wants_deltas`) then one ("done", GenerationResult).

        For servers that relay both the deltas and the final counts (the remote worker).
        """
        return self._events(request, wants_deltas)

    async def _events(
        self, request: GenerationRequest, wants_deltas: bool
    ) -> AsyncGenerator[tuple[str, Any], None]:
        timeout = request.deadline_s if request.deadline_s is not None else self.config.timeout_s
        began = time.monotonic()
        engine = await self._require(timeout)
        waited = time.monotonic() - began
        if waited > 0.05:  # the wait for the models counts against the deadline
            request = dataclasses.replace(request, deadline_s=max(timeout - waited, 0.01))
        sink = _QueueSink(asyncio.get_running_loop(), wants_deltas)
        ticket = engine.submit(request, sink)
        limit = ticket.deadline - time.monotonic() + _GRACE_S
        try:
            async with asyncio.timeout(limit):
                while True:
                    kind, value = await sink.events.get()
                    if kind == "error":
                        raise value
                    yield kind, value
                    if kind == "done":
                        return
        except TimeoutError:
            raise LMTimeout("the LM engine did not answer in time") from None
        finally:
            ticket.cancel()  # no-op when finished; frees the slot when the caller went away

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors, one per text, in order (cached by text)."""
        if not texts:
            return []
        began = time.monotonic()
        engine = await self._require(self.config.timeout_s)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[list[float]]] = loop.create_future()

        def done(outcome: list[list[float]] | BaseException) -> None:
            def settle() -> None:
                if future.done():
                    return
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass

        engine.embed(list(texts), done)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives together with the result, and the cancelled caller runs on.
            left = self.config.timeout_s - (time.monotonic() - began)
            async with asyncio.timeout(max(left, 0.0) + _GRACE_S):
                return await future
        except TimeoutError:
            raise LMTimeout("the embedder did not answer in time") from None
