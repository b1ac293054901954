"""Order-status questions and order numbers in a message (measured: bench/order_intent.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# What a member's order is called. "card", "transfer", "flight" are not shop orders.
_THING = (r"(?:orders?|packages?|pkgs?|parcels?|deliver(?:y|ies)|shipments?|purchases?|"
          r"stuff|items?|goods)")
_MINE = r"(?:my|our|the|mine|this|that)"
_WHERE = re.compile(rf"\b(?:where(?:'?s|\s+is|\s+are)?|whr|wheres)\b.{{0,30}}\b{_MINE}\s+"
                    rf"(?:\w+\s+){{0,3}}?{_THING}\b", re.IGNORECASE)
_TRACK = re.compile(r"\b(?:track(?:ing|ed)?|tack)\b", re.IGNORECASE)
_TRACK_WHAT = re.compile(rf"\b(?:{_THING}|number|link|info|code|id)\b", re.IGNORECASE)
_OWNED = re.compile(rf"\b{_MINE}\s+(?:\w+\s+){{0,3}}?{_THING}\b|\b{_THING}\s*#?\s*\d{{3,12}}\b"
                    rf"|#\s*\d{{3,12}}\b|\bi\s+(?:ordered|bought|purchased)\b", re.IGNORECASE)
_PROGRESS = re.compile(
    r"\b(?:status|update[sd]?|arriv\w*|deliver\w*|ship(?:ped|ping)?|dispatch\w*|sent|here|"
    r"com(?:e|ing)|came|transit|late|delay\w*|lost|missing|stuck|yet|receiv\w*|get\s+here|"
    r"show(?:n|ed)?\s+up|where|location|locate|find|far\s+along|going\s+on|today|tomorrow|"
    r"dropped|expect\w*|already|soon)\b",
    re.IGNORECASE)
_POLICY = re.compile(
    r"\b(?:cancel\w*|return\w*|refund\w*|exchang\w*|chang\w*|modif\w*|edit\w*|address|"
    r"coupon|discount|gift|pay(?:ment)?|price|cost|fee|free|policy|place|placing|minimum|"
    r"international|countr\w*|to\s+canada|damaged?|broken|defective|wrong\s+item)\b",
    re.IGNORECASE)
# A bank card, a transfer, a flight: other businesses' "orders", never a shop's.
_NOT_SHOP = re.compile(r"\b(?:cards?|transfers?|money|funds|account|flights?|application|"
                       r"reservation|checks|top-?up|statement|pto|vacation)\b", re.IGNORECASE)
_STATUS_WORDS = re.compile(rf"\border\s*:?\s+status\b|\bstatus\s+(?:of|on)?\s*(?:my|the)\s+"
                           rf"(?:\w+\s+){{0,2}}?{_THING}\b", re.IGNORECASE)

# "#1042", "order 1042", "order no. 1042", "order number: 1042", "tracking for 1042"
_NUMBER = re.compile(
    r"(?:#\s*|\b(?:order|ordr|no\.?|number|nr|num)\s*(?:number|no\.?|num|nr|id)?\s*[:#]?\s*"
    r"|\btrack(?:ing)?\s+(?:for|of|on)?\s*#?\s*)(\d{3,12})\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"(?<![\w.,@-])#?(\d{3,12})(?![\w.,@-])")


@dataclass(frozen=True)
class OrderAsk:
    """An order-status question; `number` when the message names the order."""

    number: str | None


def order_question(text: str) -> OrderAsk | None:
    """The order-status question in `text`, or None for anything else (a policy question
    about orders — cancelling, returns, changing the address — is the FAQ's)."""
    number = order_number(text)
    wants_status = bool(_STATUS_WORDS.search(text) or _WHERE.search(text))
    if _TRACK.search(text) and (_TRACK_WHAT.search(text) or number):
        wants_status = True
    owned = _OWNED.search(text)
    if owned and _PROGRESS.search(text[:owned.start()] + " " + text[owned.end():]):
        wants_status = True
    if number is not None and len(text.split()) <= 4:  # "order #1042?", "#1042 status"
        wants_status = True
    if not wants_status or (_POLICY.search(text) and not _WHERE.search(text)):
        return None
    if number is None and _NOT_SHOP.search(text):
        return None
    return OrderAsk(number)


def order_number(text: str, bare: bool = False) -> str | None:
    """The order number written in `text` ("#1042", "order 1042"); with `bare`, also a lone
    number (the answer to "what is your order number?")."""
    match = _NUMBER.search(text)
    if match:
        return match.group(1)
    if bare:
        numbers = _BARE_NUMBER.findall(text)
        if len(numbers) == 1:
            return str(numbers[0])
    return None
