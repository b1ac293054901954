"""The batch write path: matrix maths equal to one message at a time, one script call per
direction, the first layout still read, and scripts reloaded after a Redis restart."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
import pytest

from bot.profiles.catalog import ON_TOPIC, SPREAD, CatalogVectors, Product
from bot.profiles.ingest import ProfileWriter
from bot.profiles.model import (
    Profile,
    decode_vector,
    decode_vectors,
    encode_vectors,
    mix_vectors,
)
from bot.profiles.queue import IngestItem
from bot.storage.store import Store
from lm_service.api import LMClient
from tests.profiles.support import import_demo_catalog, save_profile
from tests.profiles.test_background import writer_for

TEXTS = ["which tent survives heavy snow?", "lol my cat again", "need a light sleeping bag",
         "the camp stove burner broke", "good morning all", "I bought the headlamp yesterday",
         "is the rain jacket waterproof", "what pot fits the stove?"]


def _reference_signals(catalog: CatalogVectors, embedding: np.ndarray) -> dict[str, float]:
    """The one-product-at-a-time loop `signals_many` replaced."""
    sims = catalog.matrix @ embedding
    best = float(sims.max())
    if best < ON_TOPIC:
        return {}
    votes: dict[str, float] = {}
    floor, total = best - SPREAD, 0.0
    for product, sim in zip(catalog.products, sims, strict=True):
        if sim <= floor:
            continue
        weight = float((sim - floor) / SPREAD)
        total += weight
        for name in (f"c:{product.category}", *(f"t:{t}" for t in product.tags)):
            if name != "c:":
                votes[name] = votes.get(name, 0.0) + weight
    return {name: min(1.0, vote / total) for name, vote in votes.items()}


def _reference_encode(vector: np.ndarray) -> str:
    """The per-vector encoder `encode_vectors` replaced."""
    values = np.asarray(vector, dtype=np.float32)
    peak = float(np.abs(values).max()) if values.size else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    quantised = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
    return f"{base64.b64encode(quantised.tobytes()).decode('ascii')}|{scale:.8g}"


def _unit_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_batched_signals_equal_the_product_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tags = ["winter", "light", "family", "rain", "cooking"]
    products = [Product(f"S{i}", f"p{i}", "", ["tents", "stoves", ""][i % 3],
                        tuple(rng.choice(tags, size=int(rng.integers(0, 4)))), None, True)
                for i in range(12)]  # an empty category, and tags listed twice, included
    base = _unit_rows(12, 24, seed)
    catalog = CatalogVectors(products, base, frozenset(), 0.0)
    # Close to a product (on topic, several near it) and random (mostly chatter).
    near = base[rng.integers(0, 12, size=20)] + 0.15 * _unit_rows(20, 24, seed + 50)
    rows = np.vstack([near / np.linalg.norm(near, axis=1, keepdims=True),
                      _unit_rows(20, 24, seed + 100)])
    batched = catalog.signals_many(rows)
    assert sum(1 for s in batched if s) >= 20 and sum(1 for s in batched if not s) >= 1
    for row, got in zip(rows, batched, strict=True):
        want = _reference_signals(catalog, row)
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) < 1e-5 for k in want)
    assert catalog.signals(rows[0]) == pytest.approx(batched[0])
    assert CatalogVectors([], np.zeros((0, 1)), frozenset(), 0.0).signals_many(rows[:2]) == [{}, {}]


def test_batched_vector_codec_matches_one_at_a_time() -> None:
    rows = np.vstack([_unit_rows(6, 384, 1), np.zeros((1, 384), dtype=np.float32)])
    encoded = encode_vectors(rows)
    assert encoded == [_reference_encode(r) for r in rows]  # byte for byte
    legacy = base64.b64encode(_unit_rows(1, 384, 2)[0].astype(np.float16).tobytes()).decode()
    texts: list[str | None] = [*encoded, None, "", legacy]
    decoded = decode_vectors(texts)
    for text, got in zip(texts, decoded, strict=True):
        want = decode_vector(text)
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            assert np.allclose(got, want, atol=1e-6)
    short = encode_vectors(_unit_rows(1, 8, 3))[0]  # another width: decoded one at a time
    mixed = decode_vectors([encoded[0], short])
    assert mixed[0] is not None and mixed[1] is not None and mixed[1].shape == (8,)


def test_mixing_rows_equals_adding_messages_one_by_one() -> None:
    start, messages = _unit_rows(3, 16, 4), _unit_rows(3, 16, 5)
    counts = np.array([1, 2, 9])  # a first message (replaces), the plain mean, the EMA
    mixed = mix_vectors(start, messages, counts)
    for i in range(3):
        profile = Profile("m", vector=None if counts[i] == 1 else start[i],
                          messages=int(counts[i]) - 1)
        profile.add_message("x", messages[i], {}, 1.0, "console", None)
        assert profile.vector is not None and np.allclose(mixed[i], profile.vector, atol=1e-6)


async def test_a_batch_writes_what_one_message_at_a_time_would(
        store: Store, lm_client: LMClient) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    now = time.time()
    older = Profile.from_hash("telegram:a", {})
    for i, text in enumerate(["planning a winter trip", "tents for snow?"]):
        vec = np.asarray((await lm_client.embed([text]))[0], dtype=np.float32)
        older.add_message(text, vec, {}, now - 100 + i, "telegram", "telegram:-1")
    await save_profile(store, "shop", older)
    await store.redis.sadd(store.keys("shop").opted_out(), "telegram:quiet")
    members = ["telegram:a", "telegram:b", "telegram:a", "telegram:quiet", "telegram:a",
               "discord:c", "telegram:b", "discord:c"]
    items = [IngestItem("shop", m, m.split(":")[0], t, now + i, f"{m.split(':')[0]}:-1")
             for i, (m, t) in enumerate(zip(members, TEXTS, strict=True))]
    vectors = await lm_client.embed(TEXTS)
    writer = writer_for(store, lm_client)
    await writer.write(items, vectors)

    catalog = await writer.catalog.get("shop")
    keys = store.keys("shop")
    expected: dict[str, Profile] = {"telegram:a": Profile.from_hash(
        "telegram:a", older.to_hash())}
    for item, raw in zip(items, vectors, strict=True):
        if item.member == "telegram:quiet":
            continue
        vec = np.asarray(raw, dtype=np.float32)
        profile = expected.setdefault(item.member, Profile(item.member))
        profile.add_message(item.text, vec, _reference_signals(catalog, vec), item.ts,
                            item.platform, item.community)
    assert not await store.redis.exists(keys.profile("telegram:quiet"))
    for member, want in expected.items():
        got = Profile.from_hash(member, await store.redis.hgetall(keys.profile(member)))
        assert (got.messages, got.on_topic, got.recent) == (want.messages, want.on_topic,
                                                            want.recent), member
        assert got.affinity.keys() == want.affinity.keys(), member
        assert all(abs(got.affinity[k] - want.affinity[k]) <= 6e-4 for k in want.affinity)
        assert got.vector is not None and want.vector is not None
        assert float(got.vector @ want.vector) > 0.999, member
        assert (got.first_seen, got.last_seen) == (round(want.first_seen),
                                                   round(want.last_seen))
        assert got.platforms == want.platforms and got.communities == want.communities
    index = dict(await store.redis.zrange(keys.profile_index(), 0, -1, withscores=True))
    assert set(index) == set(expected)
    assert abs(index["telegram:a"] - (now + 4)) < 1e-3


async def test_a_batch_costs_three_redis_commands_whatever_its_size(
        store: Store, lm_client: LMClient, monkeypatch: pytest.MonkeyPatch) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    writer = writer_for(store, lm_client)
    texts = [f"a tent for trip {n}" for n in range(64)]
    vectors = await lm_client.embed(texts)
    now = time.time()

    def batch(offset: float) -> list[IngestItem]:
        return [IngestItem("shop", f"telegram:{n}", "telegram", t, now + offset)
                for n, t in enumerate(texts)]

    await writer.write(batch(0), vectors)  # loads the scripts and the catalog
    sent: list[str] = []
    client: Any = store.redis
    original = client.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await original(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    monkeypatch.setattr(client, "pipeline", lambda *a, **k: pytest.fail("a pipeline was used"))
    await writer.write(batch(1), vectors)
    assert sorted(sent) == ["EVALSHA", "EVALSHA", "HMGET"]
    profile = Profile.from_hash("m", await store.redis.hgetall(
        store.keys("shop").profile("telegram:63")))
    assert profile.messages == 2


async def test_first_layout_profiles_are_read_and_kept(store: Store, lm_client: LMClient) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    old_vector = np.asarray((await lm_client.embed(["winter tents"]))[0], dtype=np.float32)
    keys = store.keys("shop")
    await store.redis.hset(keys.profile("telegram:1"), mapping={
        "vec": base64.b64encode(old_vector.astype(np.float16).tobytes()).decode(),
        "aff": '{"c:tents":0.5}', "msgs": "3", "topic": "2", "first": "100", "last": "200",
        "plat": "telegram", "recent": '["hi"]'})
    text = "does the winter tent handle snow?"
    await writer_for(store, lm_client).write(
        [IngestItem("shop", "telegram:1", "telegram", text, 300.0)],
        await lm_client.embed([text]))
    got = Profile.from_hash("telegram:1", await store.redis.hgetall(keys.profile("telegram:1")))
    assert (got.messages, got.on_topic, got.first_seen, got.last_seen) == (4, 3, 100, 300)
    assert got.recent == ["hi", text] and got.interest("tents") > 0.5
    assert got.vector is not None and float(got.vector @ old_vector) > 0.9


async def test_scripts_are_loaded_again_after_redis_forgot_them(
        store: Store, lm_client: LMClient) -> None:
    await import_demo_catalog(store, lm_client, "shop")
    writer: ProfileWriter = writer_for(store, lm_client)
    texts = ["need a tent", "need a stove"]
    vectors = await lm_client.embed(texts)
    for _ in range(2):
        await writer.write([IngestItem("shop", "telegram:1", "telegram", t, time.time())
                            for t in texts], vectors)
        await store.redis.script_flush()  # what a restarted server looks like to a client
    got = Profile.from_hash("m", await store.redis.hgetall(
        store.keys("shop").profile("telegram:1")))
    assert got.messages == 4


async def test_bad_batches_are_refused_and_odd_member_keys_skipped(
        store: Store, lm_client: LMClient) -> None:
    writer = writer_for(store, lm_client)
    item = IngestItem("shop", "telegram:1", "telegram", "hi", time.time())
    with pytest.raises(ValueError, match="1 messages but 2 vectors"):
        await writer.write([item], [[1.0], [1.0]])
    await writer.write([IngestItem("shop", "console:a\0b", "console", "hi", time.time())],
                       [[1.0, 0.0]])
    assert await store.redis.dbsize() == 0
