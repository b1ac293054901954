"""Extra ways to ask each FAQ entry, written by the LM at import time, filtered and embedded."""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import itertools
import json
import logging
import re
from dataclasses import dataclass

import numpy as np

from bot.knowledge.models import FaqEntry
from bot.knowledge.store import (
    KnowledgeStore,
    decode_vectors,
    encode_vectors,
    phrasings_field,
    vector_field,
)
from bot.knowledge.text import content_stems, tokens
from lm_service.api import ChatMessage, GenerationRequest, LMError, Priority

log = logging.getLogger(__name__)

MAX_WORDS = 16  # a customer's question, not a paragraph
MAX_CHARS = 120
MIN_CONTENT_WORDS = 1
ANSWER_COPY = 0.75  # difflib ratio to an answer sentence at which a line copies the answer
MIN_OWN_SIMILARITY = 0.45  # "What's the plan?" fits every entry and none
QUESTION_WORDS = frozenset("""
what whats what's when where wheres where's which who why how hows how's can could do does did
is are was were will would should may might have has any anyone
""".split())
CONCURRENT = 8  # requests in the engine's queue at once: members' questions stay ahead

# Few-shot examples about a shop that is not the merchant's, so no shop's wording leaks in.
_SENTENCE_SHOTS = (("Our store is open 9am to 5pm on weekdays.", "What time do you open?"),
                   ("Students get 10% off with a valid student ID.",
                    "Is there a student discount?"))
_REWRITE_SHOTS = (("What are your opening hours?", "when does the shop open"),
                  ("Do you offer student discounts?", "do students get money off?"))
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


def source_signature(entry: FaqEntry) -> str:
    """What the phrasings were written from; a change to it makes them stale."""
    return hashlib.sha1(json.dumps([entry.question, entry.answer]).encode()).hexdigest()[:16]


def requests_for(entry: FaqEntry, count: int) -> list[GenerationRequest]:
    """Up to `count` greedy requests, one phrasing each, taking turns: a casual rewrite of
    the question (then of each alternate), and the question that one of the answer's
    sentences answers (it brings the answer's words, e.g. the payment brands, into
    question form)."""
    rewrites = [_request("You rewrite a shop's FAQ question as a short casual chat message "
                         "from a customer, using different words.", _REWRITE_SHOTS, q)
                for q in (entry.question, *entry.alternates)]
    asks = [_request("Write the question a customer would ask that this sentence from a "
                     "shop's help page answers.", _SENTENCE_SHOTS, sentence)
            for sentence in _SENTENCE.split(entry.answer) if sentence.strip()]
    turns = [r for pair in itertools.zip_longest(rewrites, asks) for r in pair if r is not None]
    return turns[:max(0, count)]


def _request(system: str, shots: tuple[tuple[str, str], ...], text: str) -> GenerationRequest:
    messages = [ChatMessage("system", system)]
    for asked, answered in shots:
        messages += [ChatMessage("user", asked), ChatMessage("assistant", answered)]
    messages.append(ChatMessage("user", text))
    # Greedy and seeded: the same FAQ gives the same phrasings on every machine.
    return GenerationRequest(tuple(messages), max_new_tokens=32, temperature=0.0, seed=0,
                             stop=("\n",), priority=Priority.BACKGROUND, deadline_s=300.0)


def clean_line(text: str) -> str:
    """The first line of a model reply, without numbering or quotes."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    return _NUMBERING.sub("", line).strip().strip("\"'“”").strip()


def junk_reason(line: str, entry: FaqEntry) -> str | None:
    """Why a generated line is not a usable phrasing of `entry` (None: keep it), judged on
    its text alone; closeness to other entries is judged on vectors by the caller."""
    words = tokens(line)
    if not words:
        return "empty"
    if len(words) > MAX_WORDS or len(line) > MAX_CHARS:
        return "too long"
    if len(content_stems(line)) < MIN_CONTENT_WORDS:
        return "no content words"
    plain = " ".join(words)
    known = [entry.question, *entry.alternates]
    if any(plain == " ".join(tokens(k)) for k in known):
        return "repeats the question"
    answer = " ".join(tokens(entry.answer))
    if len(words) >= 3 and plain in answer:
        return "copies the answer"
    for sentence in _SENTENCE.split(entry.answer):
        ratio = difflib.SequenceMatcher(None, plain, " ".join(tokens(sentence))).ratio()
        if ratio >= ANSWER_COPY:
            return "copies the answer"
    if len(_SENTENCE.split(line.strip())) > 1:
        return "several sentences"  # "I can help with that. Can you ...?" is chat, not a way to ask
    asks = line.rstrip().endswith("?") or words[0] in QUESTION_WORDS
    stems = set(content_stems(line))
    if not asks and len(stems & set(content_stems(entry.answer))) >= 0.8 * len(stems):
        return "copies the answer"  # a statement made of the answer's words
    if not asks:
        return "not a question"  # the model answered instead of asking
    return None


@dataclass(frozen=True)
class Phrasings:
    signature: str
    lines: list[str]
    matrix: np.ndarray  # (len(lines), dim) unit vectors


class Paraphraser:
    """Writes, filters, embeds and stores the generated phrasings of a merchant's FAQ."""

    def __init__(self, knowledge: KnowledgeStore, count: int) -> None:
        self.knowledge = knowledge
        self.count = count
        self.generated = 0  # LM requests made (tests count them)
        self.incomplete = False  # the last pass left entries for later (the LM failed)
        # One pass per merchant at a time: a second caller waits, then finds nothing to do.
        self._locks: dict[str, asyncio.Lock] = {}

    async def stored(self, merchant: str) -> dict[str, Phrasings]:
        """Every entry's stored phrasings, stale ones included (check `signature`)."""
        redis = self.knowledge.store.redis
        raw = await redis.hgetall(self.knowledge.store.keys(merchant).vectors())
        out = {}
        for name, value in raw.items():
            if str(name).startswith("para:faq:"):
                data = json.loads(str(value))
                _, matrix = decode_vectors(str(value))
                out[str(name).removeprefix("para:faq:")] = Phrasings(
                    str(data["source"]), list(data["lines"]), matrix)
        return out

    async def fill(self, merchant: str) -> int:
        """Write phrasings for every entry that has none for its current text.

        Returns:
            How many entries got new phrasings.
        """
        if self.count <= 0:
            return 0
        async with self._locks.setdefault(merchant, asyncio.Lock()):
            return await self._fill(merchant)

    async def _fill(self, merchant: str) -> int:
        entries = await self.knowledge.faq_entries(merchant)
        have = await self.stored(merchant)
        todo = [e for e in entries
                if e.id not in have or have[e.id].signature != source_signature(e)]
        if not todo:
            return 0
        lines = await self._generate(todo)
        vectors = await self.knowledge.vectors(merchant)
        others = _head_vectors(entries, vectors)
        written = 0
        self.incomplete = any(c is None for c in lines)
        for entry, candidates in zip(todo, lines, strict=True):
            if candidates is None:
                continue  # some of its requests failed: the next pass tries it whole
            kept = [c for c in dict.fromkeys(candidates) if junk_reason(c, entry) is None]
            matrix = np.zeros((0, others[1].shape[1] if others[1].size else 0), np.float32)
            if kept:
                embedded = np.asarray(await self.knowledge.lm.embed(kept), dtype=np.float32)
                keep = closer_to_own(entry.id, embedded, *others)
                kept = [c for c, k in zip(kept, keep, strict=True) if k]
                matrix = embedded[keep]
            written += await self._store(merchant, entry, kept, matrix)
        return written

    async def _generate(self, entries: list[FaqEntry]) -> list[list[str] | None]:
        """Each entry's generated lines; None where the LM failed one of its requests."""
        jobs = [(i, r) for i, e in enumerate(entries) for r in requests_for(e, self.count)]
        out: list[list[str] | None] = [[] for _ in entries]
        for start in range(0, len(jobs), CONCURRENT):
            chunk = jobs[start:start + CONCURRENT]
            self.generated += len(chunk)
            results = await asyncio.gather(*(self.knowledge.lm.generate(r) for _, r in chunk),
                                           return_exceptions=True)
            for (i, _), result in zip(chunk, results, strict=True):
                if isinstance(result, LMError):
                    log.warning("FAQ phrasing not generated: %s", result)
                    out[i] = None
                elif isinstance(result, BaseException):
                    raise result
                elif (line := clean_line(result.text)) and (got := out[i]) is not None:
                    got.append(line)
        return out

    async def _store(self, merchant: str, entry: FaqEntry, lines: list[str],
                     matrix: np.ndarray) -> int:
        """Store unless the entry changed meanwhile (an import while the model wrote; one
        that lands between this check and the write leaves a stale signature, which
        retrieval ignores and the next pass replaces)."""
        keys = self.knowledge.store.keys(merchant)
        redis = self.knowledge.store.redis
        current = await self.knowledge.faq(merchant, entry.id)
        if current is None or source_signature(current) != source_signature(entry):
            return 0
        data = json.loads(encode_vectors(lines, matrix.tolist()))
        data.update(source=source_signature(entry), lines=lines)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.vectors(), phrasings_field("faq", entry.id), json.dumps(data))
            pipe.incr(keys.knowledge_version())  # retrievers rebuild their index
            await pipe.execute()
        log.info("FAQ %s: %d generated phrasings kept", entry.id, len(lines))
        return 1


async def current_phrasings(knowledge: KnowledgeStore, merchant: str,
                            entries: list[FaqEntry]) -> dict[str, Phrasings]:
    """The stored phrasings of each entry, only where written from its current text."""
    stored = await Paraphraser(knowledge, 0).stored(merchant)
    return {e.id: stored[e.id] for e in entries
            if e.id in stored and stored[e.id].signature == source_signature(e)
            and stored[e.id].matrix.size}


def _head_vectors(entries: list[FaqEntry],
                  vectors: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """The question/alternate vectors of every entry, with the entry id of each row."""
    owners: list[str] = []
    blocks = []
    for entry in entries:
        matrix = vectors.get(vector_field("faq", entry.id))
        if matrix is None or matrix.shape[0] < 2:
            continue
        blocks.append(matrix[:-1])  # the last row is the answer
        owners += [entry.id] * (matrix.shape[0] - 1)
    if not blocks:
        return owners, np.zeros((0, 0), np.float32)
    return owners, np.vstack(blocks).astype(np.float32)


def closer_to_own(entry_id: str, embedded: np.ndarray, owners: list[str],
                  heads: np.ndarray) -> list[bool]:
    """Keep a line only if it is near its own entry's phrasings and no nearer another's."""
    if heads.size == 0:
        return [True] * len(embedded)
    sims = embedded @ heads.T
    own = np.array([o == entry_id for o in owners])
    keep = []
    for row in sims:
        best_own = float(row[own].max()) if own.any() else 0.0
        best_other = float(row[~own].max()) if (~own).any() else -1.0
        keep.append(best_own >= MIN_OWN_SIMILARITY and best_own > best_other)
    return keep
