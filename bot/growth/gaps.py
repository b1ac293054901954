"""FAQ gaps: unanswered questions clustered by meaning, ranked, drafted, approved into the FAQ."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import redis.asyncio as aioredis

from bot.errors import UserInputError
from bot.knowledge.models import MAX_ALTERNATES, MAX_ANSWER, MAX_QUESTION, FaqEntry
from bot.knowledge.store import KnowledgeStore
from bot.storage.keys import Keys
from lm_service.api import ChatMessage, GenerationRequest, LMClient, Priority

log = logging.getLogger(__name__)

GAP_TTL_S = 14 * 86_400
DRAFT_SYSTEM = (
    "You help a shop's moderators write FAQ answers. Write a short, friendly answer (2-3 "
    "sentences) to the customer question. You do not know the shop's policies, so put any "
    "fact you are unsure of in [square brackets] for the moderator to fill in."
)


@dataclass(frozen=True)
class Unanswered:
    question: str
    member: str
    ts: float
    community: str | None = None


@dataclass
class Gap:
    """One cluster of paraphrased questions the bot could not answer."""

    id: str
    question: str  # the member of the cluster closest to its centre
    asked: int
    askers: int
    questions: list[str] = field(default_factory=list)  # distinct wordings, most asked first
    draft: str = ""


def normalise(question: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", question.lower()).split())


async def read_unanswered(redis: aioredis.Redis, keys: Keys, limit: int) -> list[Unanswered]:
    """The latest `limit` logged questions, oldest first, from a Redis list or stream of JSON
    `{question, member, ts, community}` (the replies feature writes them)."""
    key = keys.unanswered()
    kind = await redis.type(key)
    raw: list[dict[str, object]] = []
    if kind == "list":
        raw = [_json(str(item)) for item in await redis.lrange(key, 0, -1)]
    elif kind == "stream":
        entries = cast(list[tuple[str, dict[str, str]]],
                       await redis.xrevrange(key, count=limit))
        for _, fields in entries:
            if "question" in fields:
                raw.append(dict(fields))
            elif fields:
                raw.append(_json(next(iter(fields.values()))))
    items = []
    for entry in raw:
        text = str(entry.get("question") or "").strip()
        if text:
            items.append(Unanswered(text, str(entry.get("member") or ""),
                                    float(str(entry.get("ts") or 0)),
                                    str(entry["community"]) if entry.get("community") else None))
    items.sort(key=lambda u: u.ts)
    return items[-limit:]


def _json(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def cluster(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Group unit vectors whose cosine similarity to a group's centre reaches `threshold`.

    One pass, each vector joining the closest centre (or starting a group); then a second
    pass re-assigns every vector to its best final centre so order matters less.
    """
    if len(vectors) == 0:
        return []
    sums: list[np.ndarray] = []
    for vector in vectors:
        if sums:
            centres = np.stack([s / np.linalg.norm(s) for s in sums])
            scores = centres @ vector
            best = int(np.argmax(scores))
            if scores[best] >= threshold:
                sums[best] = sums[best] + vector
                continue
        sums.append(vector.astype(np.float64))
    centres = np.stack([s / np.linalg.norm(s) for s in sums])
    labels = np.argmax(vectors @ centres.T, axis=1)
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(int(label), []).append(index)
    return list(groups.values())


def rank_gaps(items: Sequence[Unanswered], vectors: np.ndarray,
              threshold: float) -> list[Gap]:
    """Clusters as gaps, most asked first (ties: more distinct askers, then wording)."""
    gaps = []
    for members in cluster(vectors, threshold):
        centre = vectors[members].mean(axis=0)
        central = members[int(np.argmax(vectors[members] @ centre))]
        wordings: dict[str, tuple[str, int]] = {}
        for i in members:
            norm = normalise(items[i].question)
            text, count = wordings.get(norm, (items[i].question, 0))
            wordings[norm] = (text, count + 1)
        ordered = [t for t, _ in sorted(wordings.values(), key=lambda tc: (-tc[1], tc[0]))]
        question = items[central].question
        gaps.append(Gap(
            id=hashlib.sha1(normalise(question).encode()).hexdigest()[:6],
            question=question, asked=len(members),
            askers=len({items[i].member for i in members}), questions=ordered,
        ))
    return sorted(gaps, key=lambda g: (-g.asked, -g.askers, g.question))


class FaqGaps:
    def __init__(self, redis: aioredis.Redis, lm: LMClient, knowledge: KnowledgeStore,
                 threshold: float, max_questions: int) -> None:
        self.redis = redis
        self.lm = lm
        self.knowledge = knowledge
        self.threshold = threshold
        self.max_questions = max_questions

    async def find(self, merchant: str, top: int = 5, drafts: int = 3) -> list[Gap]:
        """The `top` gaps; the first `drafts` get an LM-drafted answer (kept between runs)."""
        keys = Keys(merchant)
        resolved = await self.redis.smembers(keys.gaps_resolved())
        items = [u for u in await read_unanswered(self.redis, keys, self.max_questions)
                 if normalise(u.question) not in resolved]
        if not items:
            return []
        vectors = np.asarray(await self.lm.embed([u.question for u in items]), dtype=np.float32)
        gaps = rank_gaps(items, vectors, self.threshold)[:top]
        for index, gap in enumerate(gaps):
            stored = await self.redis.hget(keys.gap(gap.id), "draft")
            if stored:
                gap.draft = str(stored)
            elif index < drafts:
                gap.draft = await self.draft(gap.question)
            await self.redis.hset(keys.gap(gap.id), mapping={
                "question": gap.question, "asked": gap.asked, "askers": gap.askers,
                "questions": json.dumps(gap.questions), "draft": gap.draft,
            })
            await self.redis.expire(keys.gap(gap.id), GAP_TTL_S)
        async with self.redis.pipeline(transaction=True) as pipe:  # what `latest` shows
            pipe.delete(keys.gaps_latest())
            if gaps:
                pipe.rpush(keys.gaps_latest(), *[g.id for g in gaps])
                pipe.expire(keys.gaps_latest(), GAP_TTL_S)
            await pipe.execute()
        return gaps

    async def latest(self, merchant: str) -> list[Gap]:
        """The gaps the last `find` ranked that are still open, without the model (the
        dashboard shows these at once; a search refreshes them)."""
        keys = Keys(merchant)
        ids = [str(i) for i in await self.redis.lrange(keys.gaps_latest(), 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for gap_id in ids:
                pipe.hgetall(keys.gap(gap_id))
            stored = cast(list[dict[str, str]], await pipe.execute())
        return [Gap(id=gap_id, question=data["question"], asked=int(data.get("asked") or 0),
                    askers=int(data.get("askers") or 0),
                    questions=list(json.loads(data.get("questions") or "[]")),
                    draft=data.get("draft", ""))
                for gap_id, data in zip(ids, stored, strict=True) if data.get("question")]

    async def draft(self, question: str) -> str:
        result = await self.lm.generate(GenerationRequest(
            messages=(ChatMessage("system", DRAFT_SYSTEM), ChatMessage("user", question)),
            max_new_tokens=96, priority=Priority.CAMPAIGN,
        ))
        return result.text.strip()

    async def approve(self, merchant: str, gap_id: str, answer: str | None) -> FaqEntry:
        """Write the gap into the FAQ with the moderator's answer, or the draft if none.

        Raises:
            UserInputError: unknown gap id, or no answer to use.
        """
        keys = Keys(merchant)
        stored = cast(dict[str, str],
                      await self.redis.hgetall(keys.gap(gap_id.strip().lower())))
        if not stored:
            raise UserInputError(f"There is no gap {gap_id!r}; run /faq gaps to see the list.")
        text = (answer or stored.get("draft") or "").strip()
        if not text:
            raise UserInputError("This gap has no drafted answer yet; give one: "
                                 f"/faq approve {gap_id} <answer>.")
        if len(text) > MAX_ANSWER:
            raise UserInputError(f"Keep the answer under {MAX_ANSWER} characters.")
        wordings = [q[:MAX_QUESTION] for q in json.loads(stored["questions"])]
        question = stored["question"][:MAX_QUESTION]
        alternates = tuple(q for q in wordings if normalise(q) != normalise(question))
        existing = {e.id for e in await self.knowledge.faq_entries(merchant)}
        entry = FaqEntry(id=_free_id(question, existing), question=question, answer=text,
                         alternates=alternates[:MAX_ALTERNATES], tags=("from-gaps",))
        await self.knowledge.import_faq(merchant, [entry])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(keys.gaps_resolved(), *[normalise(q) for q in wordings])
            pipe.delete(keys.gap(gap_id))
            await pipe.execute()
        return entry


def _free_id(question: str, taken: set[str]) -> str:
    # FAQ ids are ASCII slugs; a question in another script falls back to "gap".
    base = re.sub(r"[^a-z0-9]+", "-", " ".join(normalise(question).split()[:5]))
    base = base[:48].strip("-") or "gap"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate
