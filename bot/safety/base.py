"""The pluggable safety interface: every filter sees the member's text on the way in and the
bot's text on the way out, and may rewrite it or block it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SafetyContext:
    """What a filter may want to know besides the text."""

    merchant: str
    member_key: str = ""
    allowed_urls: frozenset[str] = frozenset()  # links found in the FAQ and catalog
    allowed_contacts: frozenset[str] = frozenset()  # the shop's own emails, lowercased
    secrets: tuple[str, ...] = ()  # texts that must never be echoed (the system prompt)


@dataclass(frozen=True)
class Verdict:
    """The (possibly rewritten) text, and why it was blocked or changed, if it was."""

    text: str
    blocked: bool = False
    reason: str = ""  # for logs; never shown to members
    reply: str = ""  # what to tell the member when blocked
    changes: tuple[str, ...] = field(default=())


@runtime_checkable
class SafetyFilter(Protocol):
    """One check. A classifier-based filter implements the same two methods."""

    name: str

    async def check_input(self, text: str, ctx: SafetyContext) -> Verdict: ...

    async def check_output(self, text: str, ctx: SafetyContext) -> Verdict: ...


class SafetyChain:
    """Runs filters in order; the first block wins, rewrites accumulate."""

    def __init__(self, filters: Sequence[SafetyFilter]) -> None:
        self.filters = list(filters)

    async def check_input(self, text: str, ctx: SafetyContext) -> Verdict:
        return await self._run(text, ctx, inbound=True)

    async def check_output(self, text: str, ctx: SafetyContext) -> Verdict:
        return await self._run(text, ctx, inbound=False)

    async def _run(self, text: str, ctx: SafetyContext, inbound: bool) -> Verdict:
        changes: list[str] = []
        for flt in self.filters:
            verdict = await (flt.check_input(text, ctx) if inbound
                             else flt.check_output(text, ctx))
            changes.extend(verdict.changes)
            if verdict.blocked:
                return Verdict(verdict.text, True, f"{flt.name}: {verdict.reason}",
                               verdict.reply, tuple(changes))
            text = verdict.text
        return Verdict(text, changes=tuple(changes))
