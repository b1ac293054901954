"""A memo in front of the real LM client: each distinct text is embedded once per session, so
tests that import the demo shop again and again stay fast. Outputs are the real model's."""

from __future__ import annotations

from collections.abc import AsyncIterator

from lm_service.api import GenerationRequest, GenerationResult, LMClient


class EmbedMemo:
    def __init__(self, inner: LMClient) -> None:
        self.inner = inner
        self._memo: dict[str, list[float]] = {}

    async def start(self) -> None:
        return None  # the session fixture owns the real client's life

    async def stop(self) -> None:
        return None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            for text, vector in zip(missing, await self.inner.embed(missing), strict=True):
                self._memo[text] = vector
        return [self._memo[t] for t in texts]

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        return await self.inner.generate(request)

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        return self.inner.stream(request)
