"""Post-checks a generated answer against its sources: no invented numbers, prices or links."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.knowledge.text import content_stems
from bot.safety.filters import normalise_url

_NUMBER = re.compile(r"(?<![\w.])\$?\d+(?:[.,]\d+)*")
_URL = re.compile(r"(?:https?://|www\.)\S+|(?<![a-z0-9-])[a-z0-9-]+\.[a-z]{2,}/\S*",
                  re.IGNORECASE)  # a bare domain starts only where its run starts: linear


def numbers(text: str) -> set[str]:
    """Numbers as written, without currency sign, thousands separators or a '.00' tail."""
    out = set()
    for match in _NUMBER.finditer(text):
        value = match.group(0).lstrip("$").replace(",", "")
        out.add(value.removesuffix(".00").rstrip("."))
    return out


def urls(text: str) -> set[str]:
    return {normalise_url(u) for u in _URL.findall(text)}


def ungrounded(answer: str, sources: Iterable[str]) -> list[str]:
    """What in `answer` its sources do not support: numbers and links not found in them, or
    an answer that is mostly about other things. Empty when the answer is grounded."""
    source_text = "\n".join(sources)
    problems = [f"number {n}" for n in sorted(numbers(answer) - numbers(source_text))]
    known_urls = urls(source_text)
    problems += [f"link {u}" for u in sorted(urls(answer))
                 if not any(u == k or k.startswith(u) for k in known_urls)]
    words = set(content_stems(answer))
    if words:
        covered = len(words & set(content_stems(source_text))) / len(words)
        if covered < 0.5:
            problems.append(f"only {covered:.0%} of its words come from the sources")
    return problems
