"""Finds and redacts personal data (emails, phone numbers, card numbers) in free text."""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes, checked with Luhn below.
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# International or North-American style numbers with at least 7 digits.
PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}"
                   r"(?:[\s.-]?\d{2,4}){1,3}(?![\w])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card number]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    # Order numbers and prices are digits too: only grouped or +prefixed runs of 7-15 digits
    # look like phone numbers.
    grouped = bool(re.search(r"[\s.()-]", text.strip())) or text.startswith("+")
    if 7 <= len(digits) <= 15 and grouped and not re.fullmatch(r"\d+[.,]\d{1,2}", text):
        return "[phone]"
    return text


def redact(text: str, keep: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """The text with personal data replaced by placeholders, and the kinds found. Emails in
    `keep` (the shop's own support address) stay."""
    found: list[str] = []
    out = EMAIL.sub(lambda m: m.group(0) if m.group(0).lower() in keep else "[email]", text)
    if out != text:
        found.append("email")
    step = CARD.sub(_card, out)
    if step != out:
        found.append("card")
    out = step
    step = PHONE.sub(_phone, out)
    if step != out:
        found.append("phone")
    return step, found
