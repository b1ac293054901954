"""Wraps any LMClient to count its calls, tokens and latency, and to know it has loaded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from bot.ops.metrics import METRICS, Metrics
from lm_service.api import (
    GenerationRequest,
    GenerationResult,
    LMBusy,
    LMClient,
    LMTimeout,
    LMUnavailable,
)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, LMBusy):
        return "busy"
    if isinstance(exc, LMTimeout):
        return "timeout"
    if isinstance(exc, LMUnavailable):
        return "unavailable"
    return "error"


class InstrumentedLM:
    """An LMClient that records `shopkeep_lm_*` metrics around the one it wraps.

    `started` says whether the model answered since start: the App passes a client it was
    given already started (`assume_started=True`), and otherwise awaits `start()` here.
    Anything else (engine-specific attributes) is read through from the wrapped client.
    """

    def __init__(self, inner: LMClient, metrics: Metrics = METRICS,
                 assume_started: bool = False) -> None:
        self.inner = inner
        self.metrics = metrics
        self.started = assume_started
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def start(self) -> None:
        await self.inner.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self.inner.stop()

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        began = self._begin()
        try:
            result = await self.inner.generate(request)
        except BaseException as exc:
            self._end("generate", began, _outcome(exc))
            raise
        self._end("generate", began, "ok")
        self.metrics.lm_tokens.labels(direction="prompt").inc(result.prompt_tokens)
        self.metrics.lm_tokens.labels(direction="completion").inc(result.completion_tokens)
        if result.batch_size > 0:
            self.metrics.lm_batch_size.observe(result.batch_size)
        return result

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        began = self._begin()
        outcome = "error"
        try:
            async for delta in self.inner.stream(request):
                yield delta
            outcome = "ok"
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            self._end("stream", began, outcome)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        began = self._begin()
        try:
            vectors = await self.inner.embed(texts)
        except BaseException as exc:
            self._end("embed", began, _outcome(exc))
            raise
        self._end("embed", began, "ok")
        return vectors

    def _begin(self) -> float:
        self.waiting += 1
        self.metrics.lm_queue_depth.inc()
        return time.perf_counter()

    def _end(self, kind: str, began: float, outcome: str) -> None:
        self.waiting -= 1
        self.metrics.lm_queue_depth.dec()
        self.metrics.lm_requests.labels(kind=kind, outcome=outcome).inc()
        self.metrics.lm_latency.labels(kind=kind).observe(time.perf_counter() - began)
