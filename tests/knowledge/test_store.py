"""Imports into Redis: counts, re-import by id, --replace, all or nothing, no re-embedding."""

from __future__ import annotations

import dataclasses

import pytest

from bot.knowledge.files import ImportFailed, parse_faq
from bot.knowledge.models import FaqEntry, Product
from bot.knowledge.retrieval import Retriever
from bot.knowledge.store import KnowledgeStore
from bot.storage.store import Store
from tests.knowledge.conftest import CountingLM


async def _snapshot(store: Store) -> dict[str, object]:
    out: dict[str, object] = {}
    async for key in store.redis.scan_iter("sk:default:*"):
        kind = await store.redis.type(key)
        if kind == "hash":
            out[key] = await store.redis.hgetall(key)
        elif kind == "set":
            out[key] = sorted(await store.redis.smembers(key))
        else:
            out[key] = await store.redis.get(key)
    return out


async def test_import_demo_and_read_back(knowledge: KnowledgeStore, demo_faq: list[FaqEntry],
                                         demo_catalog: list[Product],
                                         counting_lm: CountingLM) -> None:
    faq = await knowledge.import_faq("default", demo_faq)
    catalog = await knowledge.import_catalog("default", demo_catalog)
    assert (faq.added, faq.updated, faq.removed) == (25, 0, 0)
    assert catalog.added == 40 and catalog.embedded == 40
    assert await knowledge.faq_entries("default") == sorted(demo_faq, key=lambda e: e.id)
    assert await knowledge.product("default", "TH-TENT-2P") == next(
        p for p in demo_catalog if p.sku == "TH-TENT-2P")
    vectors = await knowledge.vectors("default")
    assert vectors["faq:returns-policy"].shape == (5, 384)  # question, 3 alternates, answer
    assert vectors["product:TH-TENT-2P"].shape == (2, 384)
    assert counting_lm.embedded == 25 * 5 + 40 * 2


async def test_reimport_updates_by_id_and_embeds_only_what_changed(
        knowledge: KnowledgeStore, demo_faq: list[FaqEntry], counting_lm: CountingLM) -> None:
    await knowledge.import_faq("default", demo_faq)
    before = counting_lm.embedded
    changed = [dataclasses.replace(e, answer=e.answer + " Call us!") if e.id == "warranty"
               else e for e in demo_faq]
    report = await knowledge.import_faq("default", changed)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 24)
    assert counting_lm.embedded - before == 5  # only the changed entry
    assert (await knowledge.faq("default", "warranty")).answer.endswith("Call us!")  # type: ignore[union-attr]


async def test_missing_entries_stay_unless_replace(knowledge: KnowledgeStore,
                                                   demo_faq: list[FaqEntry]) -> None:
    await knowledge.import_faq("default", demo_faq)
    report = await knowledge.import_faq("default", demo_faq[:5])
    assert report.removed == 0 and len(await knowledge.faq_entries("default")) == 25
    report = await knowledge.import_faq("default", demo_faq[:5], replace=True)
    assert report.removed == 20
    assert [e.id for e in await knowledge.faq_entries("default")] == sorted(
        e.id for e in demo_faq[:5])
    assert set(await knowledge.vectors("default")) == {f"faq:{e.id}" for e in demo_faq[:5]}


async def test_a_bad_file_changes_nothing(knowledge: KnowledgeStore, store: Store,
                                          demo_faq: list[FaqEntry]) -> None:
    await knowledge.import_faq("default", demo_faq)
    before = await _snapshot(store)
    broken = (b"- id: returns-policy\n  question: Changed?\n  answer: Changed.\n"
              b"- id: second\n  question: ''\n  answer: x\n")
    with pytest.raises(ImportFailed, match="row 2: question is missing"):
        await knowledge.import_faq("default", parse_faq(broken, "faq.yaml"), replace=True)
    assert await _snapshot(store) == before


async def test_a_failure_while_embedding_changes_nothing(store: Store, memo_lm: object,
                                                         demo_faq: list[FaqEntry]) -> None:
    await KnowledgeStore(store, CountingLM(memo_lm)).import_faq(  # type: ignore[arg-type]
        "default", demo_faq[:3])
    before = await _snapshot(store)
    failing = CountingLM(memo_lm, fail_after=1)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await KnowledgeStore(store, failing).import_faq(  # type: ignore[arg-type]
            "default", demo_faq, replace=True)
    assert await _snapshot(store) == before


async def test_restart_does_not_reembed(store: Store, memo_lm: object,
                                        demo_faq: list[FaqEntry]) -> None:
    await KnowledgeStore(store, CountingLM(memo_lm)).import_faq(  # type: ignore[arg-type]
        "default", demo_faq)
    fresh = CountingLM(memo_lm)  # type: ignore[arg-type]
    retriever = Retriever(KnowledgeStore(store, fresh))  # type: ignore[arg-type]
    result = await retriever.search("default", "can i get my money back")
    assert result.hits[0].id in {"refund-timing", "returns-policy"}
    assert fresh.embedded == 1  # the question only; the entries' vectors came from Redis


async def test_merchants_are_apart(knowledge: KnowledgeStore, demo_faq: list[FaqEntry]) -> None:
    await knowledge.import_faq("shop-a", demo_faq[:2])
    await knowledge.import_faq("shop-b", demo_faq[2:4])
    assert {e.id for e in await knowledge.faq_entries("shop-a")} == {e.id for e in demo_faq[:2]}
    assert await knowledge.faq("shop-b", demo_faq[0].id) is None
