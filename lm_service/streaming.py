"""`EventClient`: `generate` and `stream` written once over a backend's stream of events."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from lm_service.api import GenerationRequest, GenerationResult


class EventClient(ABC):
    """A client whose backend yields ("delta", text) events, then one ("done", result).

    Subclasses implement `_events`; errors are raised from it, and closing it early (the
    caller went away) must tell the backend to drop the work.
    """

    @abstractmethod
    def _events(self, request: GenerationRequest, wants_deltas: bool
                ) -> AsyncGenerator[tuple[str, Any], None]:
        """The request's events; deltas only when `wants_deltas`."""

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole answer.

        Raises:
            LMBusy: the queue is full. LMTimeout: the deadline passed.
            LMUnavailable: the backend is not reachable. LMError: anything else.
        """
        result: GenerationResult | None = None
        async with contextlib.aclosing(self._events(request, False)) as events:
            async for kind, value in events:
                if kind == "done":
                    result = value
        assert result is not None
        return result

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """The answer as text deltas, in order, as they are decided."""
        async with contextlib.aclosing(self._events(request, True)) as events:
            async for kind, value in events:
                if kind == "delta":
                    yield value
