"""Finds and redacts personal data (emails, phone numbers, card numbers, IBANs) in free text."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

# Every pattern here runs on member text of any length, so each is linear by construction:
# a match may only start where a run begins (a negative look-behind on the run's own class)
# and the runs are possessive, so no position is scanned more than a few times and nothing
# backtracks. tests/safety/test_pii.py holds them to that with adversarial 100 kB inputs.

# Zero-width and bidi controls hide text from moderators and split what the filters look for.
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u00ad"
                       "\U000e0000-\U000e007f]")

# Local part: anything but spaces and the punctuation that surrounds an address in prose.
_LOCAL = r"[^\s@<>()\[\]{},;:\"`/\\|]"
# Domain labels: letters and digits of any script, hyphens; the dot (also the ideographic
# one, U+3002, which IDNA reads as a dot) separates labels.
_LABEL = r"[^\s@<>()\[\]{},;:\"'`/\\|.\u3002!?#&=*+~$%^]"
EMAIL = re.compile(rf"(?<!{_LOCAL}){_LOCAL}++@{_LABEL}++(?:[.\u3002]{_LABEL}++)++")

# Runs of digit groups joined by up to four separators: any whitespace, dots, dashes (of
# every width), slashes, brackets. A leading + or ( belongs to the run.
_SEP = r"[\s.\-\u2010-\u2015\u2212/()\u00b7\u2022]"
NUMBER_RUN = re.compile(rf"(?<!\d)(?:\+|\()?\d++(?:{_SEP}{{1,4}}+\d++)*+")
_GROUP = re.compile(r"\d+")

# Two letters, two check digits, then 11-30 letters or digits, maybe grouped.
IBAN = re.compile(r"(?<![^\W\d_])(?<!\d)[A-Za-z]{2}\d{2}(?:[ \t\-]{0,2}[A-Za-z0-9]){11,30}")
_IBAN_MIN, _IBAN_MAX = 15, 34

CARD_DIGITS = (13, 19)
PHONE_DIGITS = (7, 15)

KINDS = ("email", "iban", "card", "phone")
PLACEHOLDER = {"email": "[email]", "iban": "[iban]", "card": "[card number]",
               "phone": "[phone]"}


def normalise(text: str) -> str:
    """What redaction reads and returns: invisible characters removed, then NFKC (fullwidth
    digits and @, non-breaking and other odd spaces become their plain forms)."""
    return unicodedata.normalize("NFKC", INVISIBLE.sub("", text))


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


def iban_ok(code: str) -> bool:
    """The ISO 13616 check: country letters, then mod 97 of the rearranged number is 1."""
    if not (_IBAN_MIN <= len(code) <= _IBAN_MAX and code[:2].isalpha() and code[2:4].isdigit()
            and code.isalnum() and code.isascii()):
        return False
    number = "".join(str(int(ch, 36)) for ch in code[4:] + code[:4])
    return int(number) % 97 == 1


def redact(text: str, keep: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """The text, normalised (see `normalise`), with personal data replaced by placeholders,
    and the kinds found. Emails in `keep` (the shop's own support address) stay.

    Order numbers (#10234), prices, quantities, dates and short codes are kept; a run of
    digits is a card number only if it has 13-19 digits and passes the Luhn check, and a
    phone number only if it has 7-15 digits and is grouped, bracketed or starts with +.
    """
    found: list[str] = []
    out = normalise(text)

    def email(match: re.Match[str]) -> str:
        value = match.group(0)
        tld = re.split(r"[.\u3002]", value)[-1]
        if len(tld) < 2 or not tld.isalpha() or value.lower() in keep:
            return value
        return _found("email")

    def _found(kind: str) -> str:
        if kind not in found:
            found.append(kind)
        return PLACEHOLDER[kind]

    out = EMAIL.sub(email, out)
    out = IBAN.sub(lambda m: _iban(m.group(0), _found), out)
    out = NUMBER_RUN.sub(lambda m: _numbers(m.group(0), _found), out)
    return out, sorted(found, key=KINDS.index)


def _iban(text: str, found: Callable[[str], str]) -> str:
    """The longest prefix of `text` that is a valid IBAN, replaced; the rest kept."""
    ends = [i + 1 for i, ch in enumerate(text) if ch.isalnum()]
    code = "".join(ch for ch in text if ch.isalnum()).upper()
    # mod 97 of every prefix of the body at once (letters count as two digits, A=10), then
    # of the body followed by the six digits of the country letters and check digits.
    head = int("".join(str(int(ch, 36)) for ch in code[:4]))
    remainder, valid = 0, 0
    for length in range(5, min(len(code), _IBAN_MAX) + 1):
        value = int(code[length - 1], 36)
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
        if length >= _IBAN_MIN and (remainder * 1_000_000 + head) % 97 == 1:
            valid = length
    if not valid:
        return text
    return found("iban") + text[ends[valid - 1]:]


@dataclass
class _Group:
    start: int  # in the run's text
    end: int
    digits: str
    sep_before: str  # the separator between this group and the previous one


def _numbers(run: str, found: Callable[[str], str]) -> str:
    """Card and phone numbers among the digit groups of one run, replaced."""
    groups: list[_Group] = []
    previous_end = 0
    for match in _GROUP.finditer(run):
        groups.append(_Group(match.start(), match.end(), match.group(0),
                             run[previous_end:match.start()] if groups else ""))
        previous_end = match.end()
    total = sum(len(g.digits) for g in groups)
    if total < PHONE_DIGITS[0]:
        return run  # the common case: prices, quantities, order numbers
    spans = _card_spans(groups)
    spans += _phone_spans(groups, run, {i for a, b, _ in spans for i in range(a, b + 1)})
    if not spans:
        return run
    spans.sort()
    pieces: list[str] = []
    cursor = 0
    for first, last, kind in spans:
        # A leading + or ( is part of a phone number: it goes with it.
        start = 0 if first == 0 and kind == "phone" else groups[first].start
        pieces.append(run[cursor:start])
        pieces.append(found(kind))
        cursor = groups[last].end
        if kind == "phone" and run[cursor:cursor + 1] == ")" and "(" in run[start:cursor]:
            cursor += 1
    pieces.append(run[cursor:])
    return "".join(pieces)


def _card_spans(groups: list[_Group]) -> list[tuple[int, int, str]]:
    """Windows of whole groups with 13-19 digits passing Luhn; the longest from each start.

    Luhn sums come from prefix sums (split by digit parity), so each window costs O(1) and
    a run of n groups O(n) — also a run of a thousand one-digit groups."""
    digits = "".join(g.digits for g in groups)
    if len(digits) < CARD_DIGITS[0]:
        return []
    # plain[p][k]: digits at even/odd index below k; doubled[p][k]: the same, doubled by Luhn.
    plain = ([0], [0])
    doubled = ([0], [0])
    for index, ch in enumerate(digits):
        d = int(ch)
        for parity in (0, 1):
            hit = index % 2 == parity
            plain[parity].append(plain[parity][-1] + (d if hit else 0))
            doubled[parity].append(doubled[parity][-1] + ((2 * d - 9 if d > 4 else 2 * d)
                                                          if hit else 0))
    starts = [0]
    for g in groups:
        starts.append(starts[-1] + len(g.digits))

    def luhn(s: int, e: int) -> bool:
        kept = (e - 1) % 2  # the last digit is never doubled, nor those of its parity
        total = plain[kept][e] - plain[kept][s] + doubled[1 - kept][e] - doubled[1 - kept][s]
        return total % 10 == 0

    spans: list[tuple[int, int, str]] = []
    i, hi = 0, 0
    while i < len(groups):
        hi = max(hi, i)
        while hi + 1 < len(groups) and starts[hi + 2] - starts[i] <= CARD_DIGITS[1]:
            hi += 1
        best = -1
        for j in range(hi, i - 1, -1):
            length = starts[j + 1] - starts[i]
            if length < CARD_DIGITS[0]:
                break
            if length <= CARD_DIGITS[1] and luhn(starts[i], starts[j + 1]):
                best = j
                break
        if best >= 0:
            spans.append((i, best, "card"))
            i = best + 1
        else:
            i += 1
    return spans


def _phone_spans(groups: list[_Group], run: str,
                 taken: set[int]) -> list[tuple[int, int, str]]:
    """Windows of whole groups with 7-15 digits that are grouped or start with + or (."""
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(groups):
        if i in taken:
            i += 1
            continue
        count = len(groups[i].digits)
        j = i
        while (j + 1 < len(groups) and j + 1 not in taken and "\n" not in groups[j + 1].sep_before
               and count + len(groups[j + 1].digits) <= PHONE_DIGITS[1]):
            j += 1
            count += len(groups[j].digits)
        if PHONE_DIGITS[0] <= count <= PHONE_DIGITS[1] and _phone_like(groups, i, j, run):
            spans.append((i, j, "phone"))
            i = j + 1
        else:
            i += 1
    return spans


def _phone_like(groups: list[_Group], first: int, last: int, run: str) -> bool:
    window = groups[first:last + 1]
    seps = [g.sep_before for g in window[1:]]
    prefixed = first == 0 and run[:1] in "+("
    if not seps:
        return prefixed  # one bare run of digits is an order or tracking number
    if len(window) == 2 and seps[0] == ".":
        return False  # a decimal number
    sizes = [len(g.digits) for g in window]
    if len(window) == 3 and all(len(s) == 1 and s in "-./" for s in seps) and (
            (sizes[0] == 4 and sizes[1] <= 2 and sizes[2] <= 2)
            or (sizes[0] <= 2 and sizes[1] <= 2 and sizes[2] == 4)):
        return False  # a date
    return True
