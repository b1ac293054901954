"""Hybrid retrieval: typo-corrected question, lexical coverage fused with vector similarity."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from bot.knowledge.index import Doc, Index, build_index
from bot.knowledge.models import FaqEntry, Product
from bot.knowledge.paraphrase import current_phrasings
from bot.knowledge.store import KnowledgeStore
from bot.knowledge.text import content_stems


@dataclass(frozen=True)
class Fusion:
    """How scores combine, and where relevance starts. Chosen with bench/answer_quality.py
    on the dev half of bench/eval (the test half is reported apart)."""

    vector_weight: float = 0.6
    body_discount: float = 0.0  # an answer/description match counts this much less
    threshold: float = 0.38  # fused score below this: "I don't know"
    vector_floor: float = 0.5  # and the best match must also be this close in meaning
    confident: float = 0.55  # at or above (and clear of the runner-up): quote the source
    margin: float = 0.03
    use_speller: bool = True
    use_lexical: bool = True
    use_phrasings: bool = True  # the LM's generated phrasings of FAQ entries, where stored
    phrasing_words: bool = False  # their words also count (as answer words) in lexical
    mean_vectors: bool = False  # an entry's phrasings averaged instead of its best one
    # A clear winner may sit lower: chatty questions share few words and only ~0.4-0.5 of
    # meaning with their entry, while off-topic ones rarely single out one entry.
    clear_threshold: float = 0.36
    clear_floor: float = 0.41
    clear_lead: float = 0.1  # ahead of the runner-up by at least this
    use_clear_winner: bool = True

    def relevant(self, hit: Hit) -> bool:
        if hit.score >= self.threshold and hit.vector >= self.vector_floor:
            return True
        return (self.use_clear_winner and hit.score >= self.clear_threshold
                and hit.vector >= self.clear_floor and hit.lead >= self.clear_lead)


@dataclass(frozen=True)
class Hit:
    kind: str
    record: FaqEntry | Product
    score: float
    vector: float
    lexical: float
    lead: float = 0.0  # score minus the best other candidate's (negative below the top)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def title(self) -> str:
        return self.record.title

    @property
    def url(self) -> str | None:
        return self.record.url


@dataclass(frozen=True)
class SearchResult:
    query: str  # as matched, after slang and typo correction
    hits: list[Hit]  # best first, all of them (thresholds are the caller's to apply)

    def relevant(self, fusion: Fusion) -> list[Hit]:
        return [h for h in self.hits if fusion.relevant(h)]


class Retriever:
    """Searches a merchant's knowledge; the index is rebuilt when the stored version moves,
    so an import in another process is seen on the next question."""

    def __init__(self, knowledge: KnowledgeStore, fusion: Fusion | None = None) -> None:
        self.knowledge = knowledge
        self.fusion = fusion or Fusion()
        self._indexes: dict[str, Index] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def index(self, merchant: str) -> Index:
        version = await self.knowledge.version(merchant)
        cached = self._indexes.get(merchant)
        if cached is not None and cached.version == version:
            return cached
        lock = self._locks.setdefault(merchant, asyncio.Lock())
        async with lock:
            cached = self._indexes.get(merchant)
            if cached is not None and cached.version == version:
                return cached
            faq = await self.knowledge.faq_entries(merchant)
            products = await self.knowledge.products(merchant)
            vectors = await self.knowledge.vectors(merchant)
            phrasings = (await current_phrasings(self.knowledge, merchant, faq)
                         if self.fusion.use_phrasings else {})
            built = build_index(
                faq, products, vectors, version, {i: p.matrix for i, p in phrasings.items()},
                {i: p.lines for i, p in phrasings.items()} if self.fusion.phrasing_words else None)
            self._indexes[merchant] = built
            return built

    async def search(self, merchant: str, question: str, limit: int = 5,
                     kinds: Collection[str] = ("faq", "product"), in_stock: bool | None = None,
                     category: str | None = None) -> SearchResult:
        """Rank the merchant's FAQ entries and products for `question`.

        Args:
            kinds: which kinds of record to consider.
            in_stock: only products in (True) or out of (False) stock.
            category: only products of this category.
        """
        index = await self.index(merchant)
        fusion = self.fusion
        query = index.speller.normalise(question) if fusion.use_speller else question.lower()
        if not index.docs or not query.strip():
            return SearchResult(query, [])
        [vector] = await self.knowledge.lm.embed([query])
        head, body = index.vector(np.asarray(vector, dtype=np.float32), fusion.mean_vectors)
        vec = np.maximum(head, body - fusion.body_discount)
        if fusion.use_lexical:
            lex = index.lexical(content_stems(query))
            score = fusion.vector_weight * vec + (1 - fusion.vector_weight) * lex
        else:
            lex = np.zeros_like(vec)
            score = vec
        ranked: list[tuple[int, Doc]] = []
        for i in np.argsort(-score):
            doc = index.docs[int(i)]
            if doc.kind not in kinds:
                continue
            if isinstance(doc.record, Product):
                if in_stock is not None and doc.record.in_stock != in_stock:
                    continue
                if category is not None and doc.record.category != category.lower():
                    continue
            ranked.append((int(i), doc))
            if len(ranked) > limit:  # one more than asked: the runner-up sets the lead
                break
        scores = [float(score[i]) for i, _ in ranked]
        hits = []
        for n, (i, doc) in enumerate(ranked[:limit]):
            others = scores[:n] + scores[n + 1:]
            lead = scores[n] - max(others) if others else scores[n]
            hits.append(Hit(doc.kind, doc.record, scores[n], float(vec[i]), float(lex[i]),
                            lead))
        return SearchResult(query, hits)
