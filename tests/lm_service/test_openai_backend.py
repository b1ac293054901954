"""The OpenAI-compatible backend against a local stand-in server (aiohttp on 127.0.0.1) that
answers with the real engine."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from lm_service.api import (
    ChatMessage,
    GenerationRequest,
    LMBusy,
    LMTimeout,
    LMUnavailable,
)
from lm_service.local import InProcessLMClient
from lm_service.openai_backend import OpenAICompatibleClient


def _request(body: dict[str, Any]) -> GenerationRequest:
    return GenerationRequest(
        messages=tuple(ChatMessage(m["role"], m["content"]) for m in body["messages"]),
        max_new_tokens=body.get("max_tokens", 16), temperature=body.get("temperature", 0.0),
        top_p=body.get("top_p", 1.0), stop=tuple(body.get("stop") or ()), seed=body.get("seed"),
    )


@pytest.fixture
async def server(lm: InProcessLMClient) -> AsyncIterator[dict[str, Any]]:
    seen: dict[str, Any] = {"bodies": [], "busy": False, "loading_until": 0.0,
                            "refused_loading": 0, "unavailable": False, "calls": 0}

    async def chat(request: web.Request) -> web.StreamResponse:
        seen["calls"] += 1
        if time.monotonic() < seen["loading_until"]:  # as llama.cpp's server answers then
            seen["refused_loading"] += 1
            return web.json_response({"error": {"code": 503, "message": "Loading model",
                                                "type": "unavailable_error"}}, status=503)
        if seen["unavailable"]:
            return web.json_response({"error": {"code": 503, "message": "Overloaded"}},
                                     status=503)
        if seen["busy"]:
            return web.json_response({"error": "overloaded"}, status=429)
        seen["auth"] = request.headers.get("Authorization")
        body = await request.json()
        seen["bodies"].append(body)
        generation = _request(body)
        if not body.get("stream"):
            result = await lm.generate(generation)
            return web.json_response({
                "id": "x", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "finish_reason": "length" if result.finish_reason == "length"
                             else "stop"}],
                "usage": {"prompt_tokens": result.prompt_tokens,
                          "completion_tokens": result.completion_tokens},
            })
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        async for delta in lm.stream(generation):
            event = {"choices": [{"index": 0, "delta": {"content": delta}}], "created": time.time()}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    seen["url"] = f"http://127.0.0.1:{port}/v1"
    yield seen
    await runner.cleanup()


async def test_round_trip(server: dict[str, Any], lm: InProcessLMClient) -> None:
    client = OpenAICompatibleClient(server["url"], model="smol", api_key="k3y", embedder=lm)
    await client.start()
    try:
        request = GenerationRequest(messages=(ChatMessage("user", "What is a tent?"),),
                                    max_new_tokens=12, stop=("\n\n",))
        result = await client.generate(request)
        assert result.text == (await lm.generate(request)).text
        assert result.completion_tokens > 0 and result.prompt_tokens > 0
        assert server["bodies"][0]["model"] == "smol"
        assert server["bodies"][0]["max_tokens"] == 12
        assert server["bodies"][0]["stop"] == ["\n\n"]
        assert server["auth"] == "Bearer k3y"
        parts = [p async for p in client.stream(request)]
        assert len(parts) > 1 and "".join(parts) == result.text
        assert len((await client.embed(["a tent"]))[0]) == 384
        server["busy"] = True
        with pytest.raises(LMBusy):
            await client.generate(request)
    finally:
        client.embedder = None  # the session owns the shared engine
        await client.stop()


async def test_unreachable_server_is_unavailable() -> None:
    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", timeout_s=5)
    await client.start()
    try:
        with pytest.raises(LMUnavailable):
            await client.generate(GenerationRequest(messages=(ChatMessage("user", "hi"),)))
    finally:
        await client.stop()


async def test_requests_wait_while_the_server_loads_its_model(server: dict[str, Any]) -> None:
    client = OpenAICompatibleClient(server["url"], timeout_s=60)
    await client.start()
    try:
        request = GenerationRequest(messages=(ChatMessage("user", "What is a tent?"),),
                                    max_new_tokens=8)
        server["loading_until"] = time.monotonic() + 1.5
        result = await client.generate(request)
        parts = [p async for p in client.stream(request)]
        assert result.text and "".join(parts) == result.text
        assert server["refused_loading"] >= 2  # it was asked during the loading, and waited
        assert client._inflight == 0

        server["loading_until"] = time.monotonic() + 60
        with pytest.raises(LMTimeout):  # bounded by the request's own deadline
            await client.generate(GenerationRequest(
                messages=request.messages, max_new_tokens=8, deadline_s=1.0))
        server["loading_until"] = 0.0
        server["unavailable"] = True  # a 503 that is not about loading: busy, at once
        calls = server["calls"]
        with pytest.raises(LMBusy):
            await client.generate(request)
        assert server["calls"] == calls + 1  # not retried
        assert client._inflight == 0
    finally:
        await client.stop()
