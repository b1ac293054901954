"""`OpenAICompatibleClient`: generation by any OpenAI-compatible server (vLLM, TGI, llama.cpp).

Chat completions go over HTTP (`POST {base}/chat/completions`, streamed as server-sent
events when streaming); embeddings stay local (all-MiniLM-L6-v2 in this process), so that
profile vectors do not depend on which server generates. A server still loading its model
(503 "Loading model") is waited for, within each request's deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from lm_service.api import (
    GenerationRequest,
    GenerationResult,
    LMBusy,
    LMError,
    LMTimeout,
    LMUnavailable,
)

# A server that is up but still loading its model answers 503 with a body that says so
# (llama.cpp: {"error": {"code": 503, "message": "Loading model", ...}}).
_LOADING = re.compile(r"loading", re.IGNORECASE)
_LOADING_PAUSE_S = 0.2


class OpenAICompatibleClient:
    """Talks to `base_url` (e.g. http://vllm:8000/v1).

    Args:
        base_url: the API root that holds `/chat/completions`.
        model: the model name the server expects.
        api_key: sent as a bearer token when given.
        timeout_s: the default deadline of a request.
        max_queue: requests in flight at once; one more raises `LMBusy`.
        embedder: a client whose `embed()` serves embeddings (an `InProcessLMClient` with only
            the embedder loaded); None means `embed()` raises `LMUnavailable`.
    """

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None,
                 timeout_s: float = 30.0, max_queue: int = 256, embedder: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_queue = max_queue
        self.embedder = embedder
        self._inflight = 0
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._session = aiohttp.ClientSession(headers=headers)
        if self.embedder is not None:
            await self.embedder.start()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.embedder is not None:
            await self.embedder.stop()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if self.embedder is None:
            raise LMUnavailable("no embedder is configured with the OpenAI-compatible backend")
        return await self.embedder.embed(texts)  # type: ignore[no-any-return]

    def _body(self, request: GenerationRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": stream,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        started = time.monotonic()
        async with self._call(request, stream=False) as response:
            data = await response.json()
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise LMError(f"unexpected reply from the LM server: {data!r:.200}") from exc
        usage = data.get("usage") or {}
        latency = time.monotonic() - started
        return GenerationResult(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=_finish_reason(choice.get("finish_reason"), request, text),
            latency_s=latency,
            time_to_first_token_s=latency,
            batch_size=0,  # the server does not say
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        async with self._call(request, stream=True) as response:
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    text = line.decode().strip()
                    if not text.startswith("data:"):
                        continue
                    payload = text[5:].strip()
                    if payload == "[DONE]":
                        return
                    try:
                        delta = json.loads(payload)["choices"][0].get("delta", {})
                    except (ValueError, KeyError, IndexError) as exc:
                        raise LMError(f"bad stream event from the LM server: {payload:.200}"
                                      ) from exc
                    if delta.get("content"):
                        yield delta["content"]

    def _call(self, request: GenerationRequest, stream: bool) -> _Call:
        if self._session is None:
            raise LMUnavailable("the OpenAI-compatible client is not started")
        if self._inflight >= self.max_queue:
            raise LMBusy(f"{self.max_queue} requests already wait for the LM server")
        timeout = request.deadline_s if request.deadline_s is not None else self.timeout_s
        return _Call(self, self._session, self._body(request, stream), timeout)


class _Call:
    """One HTTP request with the errors translated into the LM service's."""

    def __init__(self, owner: OpenAICompatibleClient, session: aiohttp.ClientSession,
                 body: dict[str, Any], timeout: float) -> None:
        self.owner, self.session, self.body, self.timeout = owner, session, body, timeout
        self.response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self.owner._inflight += 1
        url = f"{self.owner.base_url}/chat/completions"
        deadline = time.monotonic() + self.timeout
        pause = _LOADING_PAUSE_S
        while True:
            try:
                self.response = await self.session.post(
                    url, json=self.body,
                    timeout=aiohttp.ClientTimeout(total=max(deadline - time.monotonic(), 0.01)),
                )
            except TimeoutError as exc:
                self.owner._inflight -= 1
                raise LMTimeout("the LM server did not answer in time") from exc
            except aiohttp.ClientError as exc:
                self.owner._inflight -= 1
                raise LMUnavailable(f"the LM server cannot be reached: {exc}") from exc
            if self.response.status != 503:
                break
            detail = (await self.response.text())[:200]
            if not _LOADING.search(detail):
                break
            # The server says it is still loading its model (llama.cpp's 503 "Loading
            # model"): a request sent early waits for it, within its deadline.
            self.response.release()
            left = deadline - time.monotonic()
            if left <= pause:
                self.owner._inflight -= 1
                raise LMTimeout("the LM server was still loading its model")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
        status = self.response.status
        if status >= 400:
            detail = (await self.response.text())[:200]
            self.response.release()
            self.owner._inflight -= 1
            if status in (429, 503):
                raise LMBusy(f"the LM server is busy ({status})")
            raise LMError(f"the LM server answered {status}: {detail}")
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        self.owner._inflight -= 1
        if self.response is not None:
            self.response.release()
        if exc and isinstance(exc[1], TimeoutError):
            raise LMTimeout("the LM server did not finish in time") from exc[1]  # type: ignore[misc]
        if exc and isinstance(exc[1], aiohttp.ClientError):
            raise LMUnavailable(f"the LM server connection failed: {exc[1]}") from exc[1]  # type: ignore[misc]


def _finish_reason(reason: str | None, request: GenerationRequest, text: str) -> str:
    return "length" if reason == "length" else "stop"
