"""The requests, results and errors shared by every LM backend (no torch here)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Priority(enum.IntEnum):
    """Lower runs first: a member waiting beats a campaign draft beats a profile summary."""

    INTERACTIVE = 0
    CAMPAIGN = 1
    BACKGROUND = 2


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...]
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    priority: Priority = Priority.INTERACTIVE
    deadline_s: float | None = None  # seconds from submission; None = the client default
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "stop_string"
    latency_s: float = 0.0
    time_to_first_token_s: float = 0.0
    batch_size: int = 1  # the most requests decoded in one step with this one (0: unknown)


class LMError(Exception):
    """Base of the LM service's errors."""


class LMBusy(LMError):
    """The queue is full; the caller should tell the member to try again shortly."""


class LMTimeout(LMError):
    """The deadline passed before the answer was ready; the work was cancelled."""


class LMUnavailable(LMError):
    """The backend cannot be reached or failed to load."""


@runtime_checkable
class LMClient(Protocol):
    """What the bot sees of the LM service, whatever serves it.

    Readiness is part of the contract: a request made while a model is still loading (the
    engine starting, the embedder loading on first use, a remote worker or an HTTP server
    not yet serving) waits for it, within the request's deadline, and fails only with
    `LMTimeout` when that passes, or `LMUnavailable` when loading failed.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]: ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length embedding vectors, one per text, in order."""
        ...
