"""Requests, results and errors as JSON, and the Redis keys the remote backend uses (no torch).

Keys (all under `sk:lm:`; the LM service is shared by every merchant and stores no merchant
data beyond a request's life):
- `sk:lm:requests:{interactive|campaign|background}`: one stream per priority;
  consumer group `lm-workers`.
- `sk:lm:reply:{request_id}`: a list of reply events (deltas, then one final event).
- `sk:lm:done:{request_id}`: set once, by the worker whose final answer counts.
- `sk:lm:cancel:{request_id}`: set by a client that stopped waiting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from lm_service.api import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LMBusy,
    LMError,
    LMTimeout,
    LMUnavailable,
    Priority,
)

PREFIX = "sk:lm"
GROUP = "lm-workers"
REPLY_TTL_S = 600


def request_stream(priority: Priority) -> str:
    return f"{PREFIX}:requests:{priority.name.lower()}"


STREAMS = [request_stream(p) for p in sorted(Priority)]  # most urgent first


def reply_key(request_id: str) -> str:
    return f"{PREFIX}:reply:{request_id}"


def done_key(request_id: str) -> str:
    return f"{PREFIX}:done:{request_id}"


def cancel_key(request_id: str) -> str:
    return f"{PREFIX}:cancel:{request_id}"


def dump_request(request: GenerationRequest) -> str:
    data = dataclasses.asdict(request)
    data["priority"] = int(request.priority)
    return json.dumps(data)


def load_request(text: str) -> GenerationRequest:
    data = json.loads(text)
    data["messages"] = tuple(ChatMessage(**m) for m in data["messages"])
    data["stop"] = tuple(data.get("stop") or ())
    data["priority"] = Priority(data.get("priority", 0))
    return GenerationRequest(**data)


def stable_seed(request: GenerationRequest) -> GenerationRequest:
    """Give a sampling request without a seed one derived from its id, so that a worker that
    takes over a dead worker's request writes the same text again."""
    if request.temperature <= 0 or request.seed is not None:
        return request
    digest = hashlib.sha256(request.request_id.encode()).digest()
    return dataclasses.replace(request, seed=int.from_bytes(digest[:7], "big"))


def dump_result(result: GenerationResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


def load_result(data: dict[str, Any]) -> GenerationResult:
    return GenerationResult(**data)


_ERRORS: dict[str, type[LMError]] = {
    "busy": LMBusy, "timeout": LMTimeout, "unavailable": LMUnavailable, "error": LMError,
}


def error_event(error: BaseException) -> dict[str, Any]:
    kind = next((k for k, cls in _ERRORS.items() if type(error) is cls), "error")
    return {"t": "error", "kind": kind, "message": str(error) or type(error).__name__}


def load_error(event: dict[str, Any]) -> LMError:
    return _ERRORS.get(event.get("kind", "error"), LMError)(event.get("message", "LM error"))
