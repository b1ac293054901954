"""What a model-written post must pass before it may be posted (loops, invented facts)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PRICE = re.compile(
    r"(?:(?P<sym>[$€£])\s?(?P<a>\d[\d,]*(?:\.\d{1,2})?))"
    r"|(?:(?<![\d,])(?P<b>\d[\d,]*(?:\.\d{1,2})?)\s?(?:USD|EUR|GBP|dollars?|euros?)\b)",
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\"']+", re.IGNORECASE)
_MASS_MENTION = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]*]*)(?=\s|$)")
SMALL_NUMBERS = 10  # counts and list markers ("two or three tips", "1.") need no source
MIN_UNIQUE_4GRAMS = 0.7  # below this share of distinct 4-word runs the text is looping


def clean(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def whole_sentences(text: str) -> str:
    """`text` up to its last sentence end ('' when no sentence ends)."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()].strip() if ends else ""


def numbers_in(texts: Iterable[str]) -> set[str]:
    return {_norm(m.group(0)) for text in texts for m in _NUMBER.finditer(text)}


def _norm(number: str) -> str:
    return number.replace(",", "").rstrip(".").removesuffix(".0").removesuffix(".00")


def loops(text: str) -> bool:
    """True when the text keeps repeating itself (small models fall into loops)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 12:
        return False
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return len(set(grams)) / len(grams) < MIN_UNIQUE_4GRAMS


def problems(text: str, prices: set[float], urls: frozenset[str],
             known_numbers: set[str]) -> list[str]:
    """Why `text` may not be posted (empty: it may).

    Args:
        prices: every catalog price; any other price in the text is invented.
        urls: catalog and FAQ links; any other link is invented.
        known_numbers: figures found in the facts given to the model (descriptions, brief,
            FAQ answers, members' questions); other figures above ten are invented.
    """
    found: list[str] = []
    if len(text) < 20:
        found.append("the text is too short")
    if _MASS_MENTION.search(text):
        found.append("it pings everyone")
    if loops(text):
        found.append("it repeats itself")
    rounded = {round(p, 2) for p in prices}
    priced: set[str] = set()
    for match in _PRICE.finditer(text):
        raw = match.group("a") or match.group("b")
        priced.add(_norm(raw))
        if round(float(raw.replace(",", "")), 2) not in rounded:
            found.append(f"price {match.group(0).strip()} is not in the catalog")
    linked = ""
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        linked += " " + url
        if url not in urls:
            found.append(f"link {url} is not a catalog or FAQ link")
    for number in sorted(numbers_in([_URL.sub(" ", text)]) - known_numbers - priced):
        if float(number.replace(",", "") or 0) > SMALL_NUMBERS:
            found.append(f"the figure {number} is not in the shop's facts")
    return found
