"""Every pattern that reads member or moderator text costs linear time, on the inputs built to
make it backtrack (the ones an audit of all the bot's patterns found quadratic, now anchored
where a run starts or possessive): ten times the text, about ten times the CPU."""

from __future__ import annotations

import re
import time

import pytest

from bot.campaigns import checks, schedule
from bot.commands import registry
from bot.profiles import segments
from bot.replies import grounding
from bot.safety import filters, pii

CASES: list[tuple[str, re.Pattern[str], str]] = [
    ("pii email, a-a-a", pii.EMAIL, "a-"),
    ("pii email, dots", pii.EMAIL, "."),
    ("pii email, a@a@", pii.EMAIL, "a@"),
    ("pii email, labels", pii.EMAIL, "a.b@c"),
    ("pii numbers, spaced digits", pii.NUMBER_RUN, "1 "),
    ("pii numbers, dotted digits", pii.NUMBER_RUN, "1."),
    ("pii numbers, brackets", pii.NUMBER_RUN, "+1 ("),
    ("pii iban, heads", pii.IBAN, "DE89 "),
    ("pii iban, letters and digits", pii.IBAN, "ab12"),
    ("output guard links, a.a.a", filters._URL, "a."),
    ("output guard links, a-a-a", filters._URL, "a-"),
    ("grounding links, a-a-a", grounding._URL, "a-"),
    ("grounding numbers", grounding._NUMBER, "1."),
    ("post prices, digits", checks._PRICE, "1"),
    ("post prices, commas", checks._PRICE, "1,"),
    ("durations, digits", schedule._DURATION_PART, "1"),
    ("durations, digits and spaces", schedule._DURATION_PART, "1 "),
    ("command tokens, spaces", registry._TOKEN, " "),
    ("command tokens, open quote", registry._TOKEN, '"a'),
    ("audience comparisons", segments._COMPARE, "a"),
    *[(f"injection {i}", p, unit) for i, p in enumerate(filters._INJECTION)
      for unit in ("ignore ", "other members ", "a ")],
]


def _cpu(pattern: re.Pattern[str], text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _match in pattern.finditer(text):
            pass
        best = min(best, time.process_time() - start)
    return max(best, 2e-4)  # below the clock's useful resolution, count it as equal


@pytest.mark.parametrize(("name", "pattern", "unit"), CASES, ids=[c[0] for c in CASES])
def test_ten_times_the_text_costs_about_ten_times(name: str, pattern: re.Pattern[str],
                                                  unit: str) -> None:
    small = unit * (4_000 // len(unit))
    large = unit * (40_000 // len(unit))
    ratio = _cpu(pattern, large) / _cpu(pattern, small)
    assert ratio < 30, f"{name}: 10x the text cost {ratio:.0f}x"
