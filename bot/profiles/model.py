"""A member's interest profile as stored in one Redis hash, and the maths that updates it."""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# How much one message moves the interest vector, and one on-topic message moves affinities.
VECTOR_RATE = 0.2
AFFINITY_RATE = 0.3
# Affinities below this are dropped, and at most this many are kept, to bound memory.
AFFINITY_FLOOR = 0.02
AFFINITY_KEEP = 24
RECENT_KEEP = 4
RECENT_CHARS = 100


def encode_vector(vector: np.ndarray) -> str:
    """int8 + one scale, base64: 384 dimensions in 513 characters (float32 JSON: ~8 KiB).
    Cosines computed on it stay within ~0.005 of the exact ones."""
    return encode_vectors(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]


def encode_vectors(matrix: np.ndarray) -> list[str]:
    """`encode_vector` of every row, with the arithmetic done once for the whole batch."""
    values = np.asarray(matrix, dtype=np.float32)
    if values.shape[1] == 0:
        return [f"|{1.0:.8g}" for _ in range(values.shape[0])]
    peaks = np.abs(values).max(axis=1).astype(np.float64)
    scales = np.where(peaks > 0, peaks / 127, 1.0)
    quantised = np.clip(np.round(values / scales.astype(np.float32)[:, None]), -127, 127)
    rows = quantised.astype(np.int8)
    return [f"{base64.b64encode(row.tobytes()).decode('ascii')}|{scale:.8g}"
            for row, scale in zip(rows, scales.tolist(), strict=True)]


def decode_vector(text: str | None) -> np.ndarray | None:
    if not text:
        return None
    data, bar, scale = text.partition("|")
    if not bar:  # the first layout: float16
        return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)
    quantised = np.frombuffer(base64.b64decode(data), dtype=np.int8).astype(np.float32)
    vector = quantised * float(scale)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def decode_vectors(texts: list[str | None]) -> list[np.ndarray | None]:
    """`decode_vector` of each text; int8 rows of one length are decoded as one matrix."""
    parts = [text.partition("|") if text else ("", "", "") for text in texts]
    raw = [base64.b64decode(data) if bar else b"" for data, bar, _ in parts]
    width = {len(r) for r, (_, bar, _) in zip(raw, parts, strict=True) if bar}
    if len(width) != 1 or 0 in width:  # mixed layouts or sizes: one at a time
        return [decode_vector(text) for text in texts]
    rows = [i for i, (_, bar, _) in enumerate(parts) if bar]
    matrix = np.frombuffer(b"".join(raw[i] for i in rows), dtype=np.int8).reshape(
        len(rows), -1).astype(np.float32)
    matrix *= np.array([float(parts[i][2]) for i in rows], dtype=np.float32)[:, None]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    batched = set(rows)
    out = [None if i in batched else decode_vector(t) for i, t in enumerate(texts)]
    for row, index in enumerate(rows):
        out[index] = matrix[row]
    return out


def mix_vectors(current: np.ndarray, embeddings: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`add_message`'s vector step for many profiles at once: row i takes message number
    `counts[i]` (1 = the first, which replaces the row) and stays unit length."""
    rate = np.maximum(VECTOR_RATE, 1.0 / np.maximum(counts, 1)).astype(np.float32)[:, None]
    mixed = (1 - rate) * current + rate * embeddings
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    np.divide(mixed, norms, out=mixed, where=norms > 0)
    return np.where(counts[:, None] <= 1, embeddings, mixed).astype(np.float32)


def encode_affinity(affinity: Mapping[str, float]) -> str:
    """`{"c:tents":0.512,...}` with three decimals, written without json's float repr (the
    costliest part of saving a profile)."""
    return "{" + ",".join(f"{_json_key(k)}:{v:.3f}" for k, v in affinity.items()
                          if math.isfinite(v)) + "}"


@functools.lru_cache(maxsize=4096)
def _json_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


# json.dumps builds a new encoder on every call that passes options; build it once.
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass
class Profile:
    """What Shopkeep knows about one member of one merchant.

    `affinity` keys are `c:<category>` and `t:<tag>` with scores in [0, 1].
    """

    member: str
    vector: np.ndarray | None = None
    affinity: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    on_topic: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    platforms: set[str] = field(default_factory=set)
    communities: set[str] = field(default_factory=set)
    bought: set[str] = field(default_factory=set)
    recent: list[str] = field(default_factory=list)
    summary: str = ""
    summary_at: int = 0  # the message count when the summary was written

    # Storage ---------------------------------------------------------------------------
    # Storage: three hash fields, so that Redis keeps ~1.3 KB per profile (each hash field
    # costs ~60 bytes of overhead once a value is too long for the compact encoding).
    @classmethod
    def from_hash(cls, member: str, data: Mapping[Any, Any]) -> Profile:
        meta = json.loads(data["meta"]) if data.get("meta") else data  # or the first layout
        return cls(
            member=member,
            vector=decode_vector(data.get("vec")),
            affinity={k: float(v) for k, v in json.loads(data.get("aff") or "{}").items()},
            messages=int(meta.get("msgs") or 0),
            on_topic=int(meta.get("topic") or 0),
            first_seen=float(meta.get("first") or 0.0),
            last_seen=float(meta.get("last") or 0.0),
            platforms=_split(meta.get("plat")),
            communities=_split(meta.get("comm")),
            bought=_split(meta.get("bought")),
            recent=list(_listed(meta.get("recent"))),
            summary=meta.get("summary") or "",
            summary_at=int(meta.get("sum_at") or 0),
        )

    def to_hash(self) -> dict[Any, Any]:
        aff, meta = self.to_fields()
        data: dict[Any, Any] = {"aff": aff, "meta": meta}
        if self.vector is not None:
            data["vec"] = encode_vector(self.vector)
        return data

    def to_fields(self) -> tuple[str, str]:
        """The `aff` and `meta` fields (the batch writer encodes the vectors together)."""
        meta = {
            "msgs": self.messages, "topic": self.on_topic, "first": round(self.first_seen),
            "last": round(self.last_seen), "plat": ",".join(sorted(self.platforms)),
            "comm": ",".join(sorted(self.communities)), "bought": ",".join(sorted(self.bought)),
            "recent": self.recent, "summary": self.summary, "sum_at": self.summary_at,
        }
        return encode_affinity(self.affinity), _compact_json(meta)

    # Updates ---------------------------------------------------------------------------
    def add_message(self, text: str, embedding: np.ndarray, signals: dict[str, float],
                    ts: float, platform: str, community: str | None) -> None:
        """Fold one message in: moving-average vector, affinities, counts, first/last seen.

        `signals` maps `c:`/`t:` names to how strongly the message is about them (0..1); empty
        for chatter, which then leaves affinities alone instead of eroding them.
        """
        self.messages += 1
        if self.vector is None:
            self.vector = embedding.astype(np.float32)
        else:
            # A plain mean over the first messages, then a moving average: the second message
            # counts as much as the first instead of a fifth.
            rate = max(VECTOR_RATE, 1.0 / self.messages)
            mixed = (1 - rate) * self.vector + rate * embedding
            norm = float(np.linalg.norm(mixed))
            self.vector = mixed / norm if norm > 0 else mixed
        self.note(text, signals, ts, platform, community)

    def note(self, text: str, signals: dict[str, float], ts: float, platform: str,
             community: str | None) -> None:
        """Everything of `add_message` but the count and the vector (see `mix_vectors`)."""
        if signals:
            self.on_topic += 1
            affinity = self.affinity
            for name in affinity.keys() | signals.keys():
                affinity[name] = ((1 - AFFINITY_RATE) * affinity.get(name, 0.0)
                                  + AFFINITY_RATE * signals.get(name, 0.0))
            kept = sorted(((v, k) for k, v in affinity.items() if v >= AFFINITY_FLOOR),
                          reverse=True)[:AFFINITY_KEEP]
            self.affinity = {k: v for v, k in kept}
        self.first_seen = min(self.first_seen, ts) if self.first_seen else ts
        self.last_seen = max(self.last_seen, ts)
        self.platforms.add(platform)
        if community:
            self.communities.add(community)
        snippet = " ".join(text.split())[:RECENT_CHARS]
        if snippet:
            self.recent = [*self.recent, snippet][-RECENT_KEEP:]

    def interest(self, name: str) -> float:
        """Affinity for a category or tag, whichever is higher."""
        return max(self.affinity.get(f"c:{name}", 0.0), self.affinity.get(f"t:{name}", 0.0))

    def top_interests(self, limit: int = 5) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for key, value in self.affinity.items():
            name = key.split(":", 1)[1]
            best[name] = max(best.get(name, 0.0), value)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    def needs_summary(self, every: int) -> bool:
        return self.on_topic > 0 and self.messages - self.summary_at >= every

    def export(self) -> dict[str, Any]:
        """Everything stored, in a form a member can read (the /mydata export)."""
        return {
            "member": self.member,
            "messages_seen": self.messages,
            "messages_about_products": self.on_topic,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "platforms": sorted(self.platforms),
            "communities": sorted(self.communities),
            "interests": {k: round(v, 3) for k, v in sorted(self.affinity.items())},
            "said_they_bought": sorted(self.bought),
            "recent_messages": list(self.recent),
            "summary": self.summary,
            "interest_vector": (None if self.vector is None
                                else [round(float(x), 4) for x in self.vector]),
        }


def _listed(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(v) for v in json.loads(value or "[]")]


def _split(text: str | None) -> set[str]:
    return {part for part in (text or "").split(",") if part}


def _iso(ts: float) -> str | None:
    if not ts or math.isnan(ts):
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
