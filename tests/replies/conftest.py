"""A running app with the demo shop on the test Redis, driven through the console adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.knowledge.feature import KnowledgeFeature
from lm_service.api import GenerationRequest, GenerationResult, LMClient
from tests.knowledge.lmcache import EmbedMemo
from tests.support.harness import running_app

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-shop"


class Recording(EmbedMemo):
    """The real model (embeddings memoised), keeping every text it was sent, to check what
    reaches the model."""

    def __init__(self, inner: LMClient) -> None:
        super().__init__(inner)
        self.seen: list[str] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.seen.extend(texts)
        return await super().embed(texts)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.seen.extend(m.content for m in request.messages)
        return await super().generate(request)


@pytest.fixture(scope="session")
def model(lm_client: LMClient) -> Recording:
    return Recording(lm_client)


Shop = Callable[..., AbstractAsyncContextManager[tuple[App, ConsoleAdapter]]]


@pytest.fixture
def shop(redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
         model: Recording) -> Shop:
    """`async with shop(**settings) as (app, console)`: the demo shop, a console member."""
    import contextlib

    @contextlib.asynccontextmanager
    async def make(**settings: Any) -> AsyncIterator[tuple[App, ConsoleAdapter]]:
        model.seen.clear()
        console = ConsoleAdapter(user="ann", interactive=False)
        async with running_app(redis_url, tmp_path, model, [console], **settings) as app:
            feature = next(f for f in app.features if isinstance(f, KnowledgeFeature))
            await feature.load_demo(DEMO, "default")
            yield app, console
            await app.router.drain()

    return make
