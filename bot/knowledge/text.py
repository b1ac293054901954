"""Chat-text normalisation for retrieval: tokens, light stemming, slang and typo correction."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

STOPWORDS = frozenset("""
a an the and or but if then so of to in on at by for with from as is are was were be been being
am do does did doing have has had having i me my mine we us our you your yours he she it its they
them their this that these those there here what which who whom whose when where why how can could
would should will shall may might must not no yes any some all each every about into over under
up down out off again than too very just also get got please hi hello hey thanks thank there's
i'm i've i'd it's don't can't what's how's there ok okay im ive id dont cant whats hows u ur pls
plz thx ya yo guys anyone someone something much many one
""".split())

# Chat shorthand seen in member questions; mapped before typo correction.
SLANG = {
    "u": "you", "ur": "your", "r": "are", "pls": "please", "plz": "please", "thx": "thanks",
    "hw": "how", "wat": "what", "wht": "what", "wen": "when", "cn": "can", "w/": "with",
    "btw": "", "idk": "", "asap": "", "rn": "now", "abt": "about", "bc": "because",
    "cuz": "because", "tmrw": "tomorrow", "msg": "message", "info": "information",
    "intl": "international", "int'l": "international", "qty": "quantity", "pkg": "package",
    "addy": "address", "2day": "today", "ship2": "ship", "n": "and",
}


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def stem(word: str) -> str:
    """A deliberately crude suffix stripper: enough to meet 'returns'/'returning'/'returned'."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + keep
    return word


def content_stems(text: str) -> list[str]:
    return [stem(t) for t in tokens(text) if t not in STOPWORDS]


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (adjacent swaps) distance, giving up past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class Speller:
    """Corrects words that are not in the shop's own vocabulary to the closest one that is.

    Only the merchant's texts (and stopwords) count as known words, so 'cancl' becomes
    'cancel' and 'retrun' becomes 'return', while a real word the shop never uses is left
    alone unless it is one typo away from a shop word.
    """

    def __init__(self, vocabulary: Iterable[str], frequency: dict[str, int]) -> None:
        self.vocabulary = frozenset(vocabulary) | STOPWORDS
        self.frequency = frequency
        self._by_first: dict[str, list[str]] = {}
        for word in self.vocabulary:
            if len(word) >= 3 and word.isalpha():
                self._by_first.setdefault(word[0], []).append(word)

    def correct(self, word: str) -> str:
        if word in self.vocabulary or len(word) < 3 or not word.isalpha():
            return word
        return self._closest(word)

    @lru_cache(maxsize=4096)  # noqa: B019 - one Speller per index version, bounded
    def _closest(self, word: str) -> str:
        limit = 1 if len(word) <= 5 else 2
        best, best_key = word, (limit + 1, 0)
        candidates = self._by_first.get(word[0], [])
        if len(word) >= 5:  # a first-letter typo is rarer; allow it for longer words only
            candidates = [w for ws in self._by_first.values() for w in ws]
        for candidate in candidates:
            if abs(len(candidate) - len(word)) > limit:
                continue
            distance = edit_distance(word, candidate, limit)
            key = (distance, -self.frequency.get(candidate, 0))
            if distance <= limit and key < best_key:
                best, best_key = candidate, key
        return best

    def normalise(self, text: str) -> str:
        """The question with slang expanded and typos fixed, for embedding and matching."""
        words = []
        for word in tokens(text):
            word = SLANG.get(word, word)
            if word:
                words.append(self.correct(word))
        return " ".join(words)
