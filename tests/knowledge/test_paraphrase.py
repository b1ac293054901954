"""LM-written FAQ phrasings: filtered, stored, reused after a restart, dropped on change."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bot.knowledge.background import PhrasingWorker
from bot.knowledge.models import FaqEntry
from bot.knowledge.paraphrase import Paraphraser, closer_to_own, junk_reason, requests_for
from bot.knowledge.retrieval import Retriever
from bot.knowledge.store import KnowledgeStore, phrasings_field
from bot.storage.store import Store
from lm_service.api import GenerationRequest, GenerationResult, LMBusy, LMClient
from tests.knowledge.conftest import CountingLM

COUNT = 2  # phrasings asked per entry: enough to see them, cheap on 2 cores


class GenerationCounter(CountingLM):
    """The real client (through the embedding memo), counting generation requests."""

    def __init__(self, inner: LMClient) -> None:
        super().__init__(inner)
        self.generations = 0

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.generations += 1
        return await self.inner.generate(request)


@pytest.fixture
def lm(counting_lm: CountingLM) -> GenerationCounter:
    return GenerationCounter(counting_lm.inner)  # type: ignore[arg-type]


@pytest.fixture
def three(demo_faq: list[FaqEntry]) -> list[FaqEntry]:
    wanted = ("returns-policy", "payment-methods", "warranty")
    return [e for e in demo_faq if e.id in wanted]


def test_junk_filter(demo_faq: list[FaqEntry]) -> None:
    entry = next(e for e in demo_faq if e.id == "payment-methods")
    copied = " ".join(entry.answer.split()[:10])  # the model often echoes the answer back
    assert junk_reason(copied, entry) == "copies the answer"
    assert junk_reason(copied.lower() + "?", entry) == "copies the answer"
    near = "We accept Visa, Mastercard, American Express, PayPal and Apple Pay."
    assert junk_reason(near, entry) == "copies the answer"  # close, not verbatim
    assert junk_reason(entry.question, entry) == "repeats the question"
    assert junk_reason("can i " + "really " * 20 + "pay with a card", entry) == "too long"
    assert junk_reason("what is it?", entry) == "no content words"
    assert junk_reason("", entry) == "empty"
    assert junk_reason("you pay when the parcel arrives", entry) == "not a question"
    assert junk_reason("Sure, I can help. Do you take cards?", entry) == "several sentences"
    assert junk_reason("can I pay with my Visa card?", entry) is None
    assert len(requests_for(entry, 3)) == 3 and requests_for(entry, 0) == []


async def test_a_line_closer_to_another_entry_is_dropped(
        lm: GenerationCounter, demo_faq: list[FaqEntry]) -> None:
    heads = [(e.id, text) for e in demo_faq for text in (e.question, *e.alternates)]
    matrix = np.asarray(await lm.embed([t for _, t in heads]), dtype=np.float32)
    lines = ["can I pay with my Visa card?", "how much is overnight shipping?",
             "what's the plan?"]
    embedded = np.asarray(await lm.embed(lines), dtype=np.float32)
    keep = closer_to_own("payment-methods", embedded, [i for i, _ in heads], matrix)
    # on topic; another entry's question; vague (near nothing)
    assert keep == [True, False, False]


async def test_phrasings_are_stored_and_reused_after_a_restart(
        redis_url: str, store: Store, lm: GenerationCounter, three: list[FaqEntry],
        tmp_path: Path) -> None:
    knowledge = KnowledgeStore(store, lm)  # type: ignore[arg-type]
    await knowledge.import_faq("default", three)
    assert lm.generations == 0  # importing does not wait for the model
    first = Paraphraser(knowledge, COUNT)
    assert await first.fill("default") == 3
    assert lm.generations == 3 * COUNT == first.generated
    stored = await first.stored("default")
    assert set(stored) == {e.id for e in three}
    kept = {i: p.lines for i, p in stored.items()}
    for entry in three:  # what was kept passed the filter, and is embedded row for row
        assert all(junk_reason(line, entry) is None for line in kept[entry.id])
        assert stored[entry.id].matrix.shape[0] == len(kept[entry.id])
    assert sum(map(len, kept.values())) > 0

    await store.stop()  # a restart: a new connection, new objects, the same Redis
    again = Store(redis_url, tmp_path)
    await again.start()
    try:
        reborn = Paraphraser(KnowledgeStore(again, lm), COUNT)  # type: ignore[arg-type]
        assert await reborn.fill("default") == 0
        assert lm.generations == 3 * COUNT  # nothing generated twice
        assert {i: p.lines for i, p in (await reborn.stored("default")).items()} == kept
        # and retrieval scores each entry by its best vector, generated ones included
        index = await Retriever(reborn.knowledge).index("default")
        rows = {d.id: len(d.rows) for d in index.docs}
        for entry in three:
            assert rows[entry.id] == 1 + len(entry.alternates) + len(kept[entry.id])
    finally:
        await again.stop()


async def test_phrasings_are_dropped_when_their_entry_changes(
        store: Store, lm: GenerationCounter, three: list[FaqEntry]) -> None:
    knowledge = KnowledgeStore(store, lm)  # type: ignore[arg-type]
    await knowledge.import_faq("default", three)
    paraphraser = Paraphraser(knowledge, COUNT)
    await paraphraser.fill("default")
    vectors_key = store.keys("default").vectors()
    changed = replace(three[0], answer=three[0].answer + " Ask us about anything else.")
    tagged = replace(three[1], tags=(*three[1].tags, "new-tag"))  # not its text: phrasings stay
    await knowledge.import_faq("default", [changed, tagged, three[2]])
    assert not await store.redis.hexists(vectors_key, phrasings_field("faq", changed.id))
    assert await store.redis.hexists(vectors_key, phrasings_field("faq", tagged.id))
    before = lm.generations
    assert await paraphraser.fill("default") == 1  # only the changed entry is rewritten
    assert lm.generations - before == COUNT
    await knowledge.remove_faq("default", three[2].id)
    assert not await store.redis.hexists(vectors_key, phrasings_field("faq", three[2].id))


async def test_the_worker_writes_phrasings_after_an_import_settles(
        store: Store, lm: GenerationCounter, three: list[FaqEntry]) -> None:
    knowledge = KnowledgeStore(store, lm)  # type: ignore[arg-type]
    worker = PhrasingWorker(Paraphraser(knowledge, COUNT), delay_s=0.0)
    await worker.start()
    try:
        await knowledge.import_faq("default", three[:1])
        deadline = time.monotonic() + 90  # bounded: a hung model fails the test, not CI
        while not await worker.paraphraser.stored("default"):
            assert time.monotonic() < deadline, "no phrasings written within 90 s"
            await asyncio.sleep(0.2)
        assert set(await worker.paraphraser.stored("default")) == {three[0].id}
    finally:
        await worker.stop()
    assert worker._task is None


class BusyOnce(GenerationCounter):
    """Answers the first generation with LMBusy (a full queue), then the real model."""

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.generations += 1
        if self.generations == 1:
            raise LMBusy("queue full")
        return await self.inner.generate(request)


async def test_an_entry_whose_generation_failed_is_tried_again_whole(
        store: Store, counting_lm: CountingLM, three: list[FaqEntry]) -> None:
    lm = BusyOnce(counting_lm.inner)  # type: ignore[arg-type]
    knowledge = KnowledgeStore(store, lm)  # type: ignore[arg-type]
    await knowledge.import_faq("default", three[:1])
    paraphraser = Paraphraser(knowledge, COUNT)
    assert await paraphraser.fill("default") == 0  # not stored with half its phrasings
    assert paraphraser.incomplete and await paraphraser.stored("default") == {}
    assert await paraphraser.fill("default") == 1
    assert not paraphraser.incomplete and lm.generations == 2 * COUNT
