"""FAQ gaps: reading the unanswered log, clustering, ranking (model-free parts)."""

from __future__ import annotations

import json

import numpy as np
import redis.asyncio as aioredis

from bot.growth.gaps import Unanswered, cluster, normalise, rank_gaps, read_unanswered
from bot.storage.keys import Keys

KEYS = Keys("default")


def _around(direction: np.ndarray, rng: np.random.Generator, n: int,
            noise: float) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        v = direction + rng.normal(0, noise, direction.shape)
        out.append(v / np.linalg.norm(v))
    return out


def test_cluster_groups_vectors_around_each_direction() -> None:
    rng = np.random.default_rng(3)
    directions = np.eye(32)[:4]
    labelled = [(d, v) for d in range(4) for v in _around(directions[d], rng, 5 + d, 0.05)]
    order = rng.permutation(len(labelled))
    vectors = np.stack([labelled[i][1] for i in order])
    truth = [labelled[i][0] for i in order]
    groups = cluster(vectors, threshold=0.7)
    assert sorted(len(g) for g in groups) == [5, 6, 7, 8]
    for group in groups:
        assert len({truth[i] for i in group}) == 1
    assert cluster(np.zeros((0, 32)), 0.7) == []
    # A threshold above every similarity leaves each vector alone.
    assert len(cluster(vectors, threshold=0.9999)) == len(vectors)


def test_rank_gaps_orders_by_times_asked_then_askers() -> None:
    e = np.eye(4)
    items = [Unanswered("Gift cards?", "a", 1), Unanswered("gift cards??", "a", 2),
             Unanswered("Do you sell gift cards", "b", 3), Unanswered("Open Sundays?", "c", 4),
             Unanswered("Open on Sunday?", "d", 5), Unanswered("Ship to Mars?", "e", 6)]
    vectors = np.stack([e[0], e[0], e[0], e[1], e[1], e[2]])
    gaps = rank_gaps(items, vectors, 0.8)
    assert [(g.asked, g.askers) for g in gaps] == [(3, 2), (2, 2), (1, 1)]
    assert gaps[0].questions == ["Gift cards?", "Do you sell gift cards"]  # "gift cards??" same
    assert len({g.id for g in gaps}) == 3
    assert normalise("  Gift   CARDS?? ") == "gift cards"


async def test_reads_the_log_as_a_list_or_a_stream(redis_client: aioredis.Redis) -> None:
    entries = [{"question": f"q{n}?", "member": f"telegram:{n}", "ts": 100 + n,
                "community": None} for n in range(5)]
    await redis_client.lpush(KEYS.unanswered(), *[json.dumps(e) for e in entries])
    await redis_client.lpush(KEYS.unanswered(), "not json", json.dumps({"question": ""}))
    items = await read_unanswered(redis_client, KEYS, limit=3)
    assert [u.question for u in items] == ["q2?", "q3?", "q4?"]  # the latest, oldest first
    assert items[0] == Unanswered("q2?", "telegram:2", 102.0, None)
    await redis_client.delete(KEYS.unanswered())
    for entry in entries[:2]:
        await redis_client.xadd(KEYS.unanswered(), {"question": entry["question"],
                                                    "member": entry["member"], "ts": entry["ts"],
                                                    "community": "telegram:c"})
    await redis_client.xadd(KEYS.unanswered(), {"data": json.dumps(entries[4])})
    items = await read_unanswered(redis_client, KEYS, limit=10)
    assert [(u.question, u.community) for u in items] == [
        ("q0?", "telegram:c"), ("q1?", "telegram:c"), ("q4?", None)]
    await redis_client.delete(KEYS.unanswered())
    assert await read_unanswered(redis_client, KEYS, limit=10) == []
