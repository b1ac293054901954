"""Fixtures for knowledge tests: a started store on the test Redis, the demo shop's files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.knowledge.files import parse_catalog, parse_faq
from bot.knowledge.models import FaqEntry, Product
from bot.knowledge.store import KnowledgeStore
from bot.storage.store import Store
from lm_service.api import LMClient
from tests.knowledge.lmcache import EmbedMemo

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-shop"


@pytest.fixture(scope="session")
def demo_faq() -> list[FaqEntry]:
    return parse_faq((DEMO / "faq.yaml").read_bytes(), "faq.yaml")


@pytest.fixture(scope="session")
def demo_catalog() -> list[Product]:
    return parse_catalog((DEMO / "catalog.csv").read_bytes(), "catalog.csv")


@pytest.fixture
async def store(redis_url: str, redis_client: aioredis.Redis,
                tmp_path: Path) -> AsyncIterator[Store]:
    started = Store(redis_url, tmp_path)
    await started.start()
    yield started
    await started.stop()


class CountingLM:
    """The real client, with a count of texts embedded (to see what an import re-embeds) and
    an optional failure after some batches (to see that a failed import changes nothing)."""

    def __init__(self, inner: LMClient, fail_after: int | None = None) -> None:
        self.inner = inner
        self.embedded = 0
        self.calls = 0
        self.fail_after = fail_after

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ConnectionError("embedding backend went away")
        self.embedded += len(texts)
        return await self.inner.embed(texts)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.fixture(scope="session")
def memo_lm(lm_client: LMClient) -> EmbedMemo:
    return EmbedMemo(lm_client)


@pytest.fixture
def counting_lm(memo_lm: EmbedMemo) -> CountingLM:
    return CountingLM(memo_lm)  # type: ignore[arg-type]


@pytest.fixture
async def knowledge(store: Store, counting_lm: CountingLM) -> KnowledgeStore:
    return KnowledgeStore(store, counting_lm)  # type: ignore[arg-type]
