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

# Everyday words the speller must not "correct" into a shop word ('like' is not 'live').
COMMON = frozenset("""
like love want need know think make take give come look find tell ask work seem feel try
leave call good new first last long great little own other old right big high different small
large next early young important few public bad same able day time year way thing man world
life hand part child eye woman place week case point number group problem fact back still
well even also only now then here there never always sometimes really actually maybe sure
stuff things gear item items keep kind sort lot lots bit today tonight tomorrow yesterday
morning evening night friend brother sister mom dad wife husband kids family home house car
work job money card bank said says told thanks thank hello please sorry wrong right wait
still already yet soon later again since until while before after during without within
every everything nothing something anything someone anyone everyone people person guys
game movie music weather rain snow sun cold warm hot nice cool awesome help want wanted
dont doesnt didnt cant wont isnt arent wasnt havent hasnt shouldnt wouldnt couldnt
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


# Words members and merchants use for the same thing in shop talk. Generic on purpose: these
# are not tuned to one shop's FAQ.
SYNONYM_GROUPS = [
    "ship shipping deliver delivery post mail send",
    "order purchase package parcel",
    "refund money reimburse",
    "return send back",
    "exchange swap trade",
    "cancel stop",
    "cost price fee charge much",
    "free complimentary",
    "warranty guarantee covered coverage lifetime",
    "repair fix patch mend hole tear rip",
    "contact call phone email reach talk",
    "support service help agent representative rep",
    "discount promo coupon code",
    "store shop",
    "broken damaged defective dent crack scratch",
    "restock stock available notify notification alert",
    "rent rental hire borrow",
    "size fit small medium large tight loose",
    "track tracking",
    "address location",
    "international abroad overseas",
    # card brands and ways to pay are all questions about payment methods
    "pay payment visa mastercard paypal klarna afterpay installment",
    "gift voucher certificate",
    "pickup pick collect",
    "clean wash",
]


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def stem(word: str) -> str:
    """A deliberately crude suffix stripper: enough to meet 'returns'/'returning'/'returned'."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + keep
    return word


def content_stems(text: str) -> list[str]:
    return [stem(t) for t in tokens(text) if t not in STOPWORDS and len(t) > 1]


def _synonym_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in SYNONYM_GROUPS:
        stems = {stem(w) for w in group.split()}
        for s_ in stems:
            table.setdefault(s_, set()).update(stems)
    return {k: frozenset(v) for k, v in table.items()}


SYNONYMS = _synonym_table()
# Known words even where the shop never writes them: 'klarna' must not be "corrected".
SYNONYM_WORDS = frozenset(w for group in SYNONYM_GROUPS for w in group.split())


def variants(stem_: str) -> frozenset[str]:
    """The stem and its shop-talk synonyms."""
    return SYNONYMS.get(stem_, frozenset((stem_,)))


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
        self.vocabulary = frozenset(vocabulary) | STOPWORDS | COMMON | SYNONYM_WORDS
        self.frequency = frequency
        self._by_first: dict[str, list[str]] = {}
        for word in self.vocabulary:
            if len(word) >= 3 and word.isalpha():
                self._by_first.setdefault(word[0], []).append(word)

    def correct(self, word: str) -> str:
        # Three-letter words are too often real words one edit from a shop word ('lol').
        if word in self.vocabulary or len(word) < 4 or not word.isalpha():
            return word
        return self._closest(word)

    @lru_cache(maxsize=4096)  # noqa: B019 - one Speller per index version, bounded
    def _closest(self, word: str) -> str:
        limit = 1 if len(word) <= 5 else 2
        best, best_key = word, (limit + 1, 0)
        candidates = self._by_first.get(word[0], [])
        if len(word) >= 6:  # a first-letter typo is rarer; allow it for longer words only
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
