"""Audience expressions for campaigns and `/segment preview`: which members match, and how many.

Grammar (terms separated by spaces must all hold; a leading `-` negates a term):

    interest:NAME[OP N]   affinity for a catalog category or tag, 0..1 (default: >=0.2)
    active:N(d|h)         wrote within the last N days / hours
    idle:N(d|h)           has not written for at least N days / hours
    platform:NAME         has written on discord, telegram or console
    community:KEY         has written in that community (e.g. telegram:-1001234)
    messages OP N         number of messages seen (messages>=5)
    bought:SKU            said they bought that product
    all                   every member with a profile

OP is one of > >= < <= =. Example: `interest:tents>0.3 active:30d platform:telegram`.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import UserInputError
from bot.events import Platform
from bot.profiles.model import Profile
from bot.storage.store import Store

DEFAULT_INTEREST = 0.2
_FIELDS = ["aff", "meta"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
_COMPARE = re.compile(r"^(?P<name>[^<>=]+?)(?P<op>>=|<=|>|<|=)(?P<value>-?\d+(?:\.\d+)?)$")
_WINDOW = re.compile(r"^(?P<n>\d+)(?P<unit>[dh])$")
_CHUNK = 1000
MAX_WINDOW_DAYS = 3650  # ten years: longer than any profile is kept


@dataclass(frozen=True)
class Term:
    kind: str  # interest | active | idle | platform | community | messages | bought | all
    name: str = ""
    op: str = ">="
    value: float = 0.0
    negate: bool = False

    def holds(self, profile: Profile, now: float) -> bool:
        return self._test(profile, now) != self.negate

    def _test(self, profile: Profile, now: float) -> bool:
        if self.kind == "interest":
            return _OPS[self.op](profile.interest(self.name), self.value)
        if self.kind == "active":
            return profile.last_seen >= now - self.value
        if self.kind == "idle":
            return profile.last_seen < now - self.value
        if self.kind == "platform":
            return self.name in profile.platforms
        if self.kind == "community":
            return self.name in profile.communities
        if self.kind == "messages":
            return _OPS[self.op](float(profile.messages), self.value)
        if self.kind == "bought":
            return self.name in profile.bought
        return True  # all


@dataclass(frozen=True)
class Segment:
    expr: str
    terms: tuple[Term, ...]

    def matches(self, profile: Profile, now: float | None = None) -> bool:
        when = time.time() if now is None else now
        return all(term.holds(profile, when) for term in self.terms)

    def active_window(self) -> float | None:
        """The narrowest positive `active:` window, used to read fewer candidates."""
        windows = [t.value for t in self.terms if t.kind == "active" and not t.negate]
        return min(windows) if windows else None

    def interests(self) -> list[str]:
        return [t.name for t in self.terms if t.kind == "interest"]


class Segments:
    """Parses audience expressions and finds the members of one merchant that match."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def parse(expr: str) -> Segment:
        """Parse an expression (grammar in the module docstring).

        Raises:
            UserInputError: naming the term that is wrong and what is allowed.
        """
        words = expr.split()
        if not words:
            raise UserInputError("An audience needs at least one term, e.g. "
                                 "`interest:tents>0.3 active:30d`, or `all`.")
        return Segment(expr.strip(), tuple(_parse_term(w) for w in words))

    async def members_matching(self, merchant: str, expr: str | Segment,
                               now: float | None = None) -> list[str]:
        """Member keys matching `expr`, most recently active first."""
        segment = self.parse(expr) if isinstance(expr, str) else expr
        when = time.time() if now is None else now
        keys = self.store.keys(merchant)
        redis = self.store.redis
        window = segment.active_window()
        low: float | str = when - window if window is not None else "-inf"
        candidates = [str(m) for m in await redis.zrevrangebyscore(
            keys.profile_index(), "+inf", low)]
        matched: list[str] = []
        stale: list[str] = []
        for start in range(0, len(candidates), _CHUNK):
            chunk = candidates[start:start + _CHUNK]
            pipe = redis.pipeline(transaction=False)
            for member in chunk:
                pipe.hmget(keys.profile(member), _FIELDS)
            for member, values in zip(chunk, await pipe.execute(), strict=True):
                if values[1] is None:  # expired or erased: drop it from the index
                    stale.append(member)
                    continue
                data = {f: v for f, v in zip(_FIELDS, values, strict=True) if v is not None}
                if segment.matches(Profile.from_hash(member, data), when):
                    matched.append(member)
        if stale:
            await redis.zrem(keys.profile_index(), *stale)
        return matched

    async def count(self, merchant: str, expr: str | Segment) -> int:
        return len(await self.members_matching(merchant, expr))


def _parse_term(word: str) -> Term:
    negate = word.startswith("-")
    body = word[1:] if negate else word
    kind, colon, rest = body.partition(":")
    kind = kind.lower()
    if body.lower() == "all":
        return Term("all", negate=negate)
    if kind.startswith("messages") and not colon:
        match = _COMPARE.match(body)
        if not match or match["name"].lower() != "messages":
            raise UserInputError(f"`{word}`: write a message count like `messages>=5`.")
        return Term("messages", op=match["op"], value=float(match["value"]), negate=negate)
    if not colon or not rest:
        raise UserInputError(_unknown(word))
    if kind == "interest":
        match = _COMPARE.match(rest)
        if match is None:
            if re.search(r"[<>=]", rest):
                raise UserInputError(f"`{word}`: write it like `interest:tents>0.3` "
                                     "(a score from 0 to 1).")
            return Term("interest", rest.lower(), ">=", DEFAULT_INTEREST, negate)
        value = float(match["value"])
        if not 0 <= value <= 1:
            raise UserInputError(f"`{word}`: interest scores go from 0 to 1.")
        return Term("interest", match["name"].lower(), match["op"], value, negate)
    if kind in ("active", "idle"):
        match = _WINDOW.match(rest.lower())
        if match is None or int(match["n"][:12]) == 0:
            raise UserInputError(f"`{_short(word)}`: give a period like `{kind}:30d` or "
                                 f"`{kind}:12h`.")
        hours = int(match["n"][:12]) * (24 if match["unit"] == "d" else 1)
        if len(match["n"]) > 12 or hours > MAX_WINDOW_DAYS * 24:
            raise UserInputError(f"`{_short(word)}`: the longest period is "
                                 f"{MAX_WINDOW_DAYS}d ({MAX_WINDOW_DAYS // 365} years).")
        seconds = hours * 3_600
        return Term(kind, value=float(seconds), negate=negate)
    if kind == "platform":
        names = [p.value for p in Platform]
        if rest.lower() not in names:
            raise UserInputError(f"`{word}`: platform is one of {', '.join(names)}.")
        return Term("platform", rest.lower(), negate=negate)
    if kind == "community":
        return Term("community", rest, negate=negate)
    if kind == "bought":
        return Term("bought", rest, negate=negate)
    raise UserInputError(_unknown(word))


def _short(word: str) -> str:
    return word if len(word) <= 40 else word[:37] + "..."


def _unknown(word: str) -> str:
    return (f"I don't understand `{word}` in the audience. Use interest:NAME>0.3, active:30d, "
            "idle:90d, platform:telegram, community:KEY, messages>=5, bought:SKU or all "
            "(prefix - to exclude).")
