"""The in-memory search index of one merchant's knowledge: lexical statistics and vectors."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bot.knowledge.models import FaqEntry, Product
from bot.knowledge.store import embed_texts, vector_field
from bot.knowledge.text import Speller, content_stems, tokens, variants

# Words in a product's description or an FAQ answer count for less than words in its name or
# question: they describe, they do not say what the entry is about.
BODY_WEIGHT = 0.5


@dataclass
class Doc:
    kind: str  # "faq" | "product"
    record: FaqEntry | Product
    head: frozenset[str]  # stems of the question/alternates/tags, or name/category/tags
    body: frozenset[str]  # stems of the answer, or description
    rows: list[int] = field(default_factory=list)  # rows of the vector matrix
    body_rows: list[int] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def title(self) -> str:
        return self.record.title


@dataclass
class Index:
    docs: list[Doc]
    matrix: np.ndarray  # (rows, dim) unit vectors
    idf: dict[str, float]
    speller: Speller
    version: int = 0

    @property
    def max_idf(self) -> float:
        return math.log(1 + len(self.docs)) + 1.0

    def lexical(self, query_stems: list[str]) -> np.ndarray:
        """IDF-weighted share of the question's words that each entry contains (0..1)."""
        groups = {s: variants(s) for s in set(query_stems)}
        weights = {s: self.idf.get(s) or min((self.idf[v] for v in g if v in self.idf),
                                             default=self.max_idf)
                   for s, g in groups.items()}
        total = sum(weights.values())
        out = np.zeros(len(self.docs), dtype=np.float32)
        if total <= 0:
            return out
        for i, doc in enumerate(self.docs):
            got = 0.0
            for stem_, weight in weights.items():
                if not groups[stem_].isdisjoint(doc.head):
                    got += weight
                elif not groups[stem_].isdisjoint(doc.body):
                    got += weight * BODY_WEIGHT
            out[i] = got / total
        return out

    def vector(self, query: np.ndarray, mean: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Best cosine per entry over its question phrasings / name, and over its body
        (`mean`: their average instead, measured worse in bench/answer_quality.py)."""
        pool = np.mean if mean else np.max
        head = np.zeros(len(self.docs), dtype=np.float32)
        body = np.zeros(len(self.docs), dtype=np.float32)
        if self.matrix.size == 0:
            return head, body
        sims = self.matrix @ query
        for i, doc in enumerate(self.docs):
            if doc.rows:
                head[i] = float(pool(sims[doc.rows]))
            if doc.body_rows:
                body[i] = float(sims[doc.body_rows].max())
        return head, body


def build_index(faq: list[FaqEntry], products: list[Product],
                vectors: dict[str, np.ndarray], version: int = 0,
                phrasings: dict[str, np.ndarray] | None = None,
                phrasing_texts: dict[str, list[str]] | None = None) -> Index:
    """Args:
        vectors: each record's stored vectors (`embed_texts` order).
        phrasings: extra question vectors per FAQ entry id (generated phrasings); an entry
            scores by its best vector, so they add ways in without diluting the authored ones.
        phrasing_texts: the generated phrasings' texts; their words count as body words.
    """
    docs: list[Doc] = []
    blocks: list[np.ndarray] = []
    row = 0
    words: Counter[str] = Counter()
    records: list[FaqEntry | Product] = [*faq, *products]
    for record in records:
        kind = "faq" if isinstance(record, FaqEntry) else "product"
        if isinstance(record, FaqEntry):
            head_text = " ".join([record.question, *record.alternates, *record.tags])
            body_text = " ".join([record.answer, *(phrasing_texts or {}).get(record.id, [])])
        else:
            head_text = " ".join([record.name, record.category.replace("-", " "), *record.tags])
            body_text = record.description
        words.update(tokens(head_text + " " + body_text))
        doc = Doc(kind, record, frozenset(content_stems(head_text.replace("-", " "))),
                  frozenset(content_stems(body_text)))
        matrix = vectors.get(vector_field(kind, record.id))
        if matrix is not None and matrix.shape[0] == len(embed_texts(record)):
            heads = matrix.shape[0] - 1 if kind == "faq" else 1
            doc.rows = list(range(row, row + heads))
            doc.body_rows = list(range(row + heads, row + matrix.shape[0]))
            blocks.append(matrix)
            row += matrix.shape[0]
            extra = (phrasings or {}).get(record.id) if kind == "faq" else None
            if extra is not None and extra.shape[1:] == matrix.shape[1:]:
                doc.rows += list(range(row, row + extra.shape[0]))
                blocks.append(extra)
                row += extra.shape[0]
        docs.append(doc)
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(doc.head | doc.body)
    n = len(docs)
    idf = {s: math.log((n + 1) / (c + 0.5)) + 1.0 for s, c in df.items()}
    dim = blocks[0].shape[1] if blocks else 0
    matrix = np.vstack(blocks).astype(np.float32) if blocks else np.zeros((0, dim), np.float32)
    return Index(docs, matrix, idf, Speller(words, dict(words)), version)
