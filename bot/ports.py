"""The border between the core and the platforms: the Adapter ABC and the handler it calls."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.commands.registry import CommandSpec
from bot.events import CommunityRef, Inbound, MembershipChange, Outbound, Platform
from bot.safety.pii import redact

if TYPE_CHECKING:
    import redis.asyncio as aioredis

InboundHandler = Callable[[Inbound], Awaitable[list[Outbound]]]
"""The core's entry point: give it a member's message, get back what to answer (maybe nothing)."""


class AdapterHost(Protocol):
    """What the core offers an adapter: the message handler, the commands to publish, and the
    shared Redis for platform bookkeeping (update offsets, flood limits across processes)."""

    async def handle(self, inbound: Inbound) -> list[Outbound]: ...

    async def membership(self, change: MembershipChange) -> None:
        """A member joined or left a community (referral attribution and withdrawal)."""

    @property
    def commands(self) -> Sequence[CommandSpec]: ...

    @property
    def redis(self) -> aioredis.Redis: ...


def redact_personal_data(text: str) -> str:
    """`text` with emails, phone, card numbers and IBANs replaced by placeholders: the only
    form of a member's words an adapter may keep (an update buffer, a log line)."""
    return redact(text)[0]


@dataclass(frozen=True)
class Capabilities:
    max_message_length: int
    buttons: bool = False
    edits: bool = False
    files: bool = False
    typing_indicator: bool = False


class Adapter(ABC):
    """One chat platform. Adapters translate events and send messages; they hold no logic."""

    platform: Platform
    capabilities: Capabilities

    @abstractmethod
    async def start(self, host: AdapterHost) -> None:
        """Connect, publish `host.commands` where the platform lists them (slash commands,
        the command menu), and begin delivering inbound messages to `host.handle`; returns
        once connected."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking messages, finish pending sends, disconnect."""

    @abstractmethod
    async def send(self, outbound: Outbound) -> list[str]:
        """Post `outbound` to its destination; returns the platform ids of the messages sent."""

    async def create_invite(self, community: CommunityRef, name: str) -> str | None:
        """A new invite link to `community` for one member, named `name` where the platform
        keeps names; None where the platform or the bot's rights do not allow one."""
        return None


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_message(text: str, limit: int) -> list[str]:
    """Split `text` into chunks of at most `limit` characters, preferring paragraph and
    sentence boundaries, then spaces, and cutting a word only when it alone is too long."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = _last_boundary(window, limit)
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return [c for c in chunks if c]


def _last_boundary(window: str, limit: int) -> int:
    floor = limit // 3  # never make a chunk absurdly short to reach a boundary
    for pattern in ("\n\n", "\n"):
        idx = window.rfind(pattern, floor, limit)
        if idx > 0:
            return idx + len(pattern)
    best = -1
    for match in _SENTENCE_END.finditer(window):
        if floor <= match.start() <= limit:
            best = match.end() if match.end() <= limit else match.start()
    if best > 0:
        return best
    idx = window.rfind(" ", floor, limit)
    return idx + 1 if idx > 0 else limit


def render_plain(outbound: Outbound) -> str:
    """Text with its sources line and any buttons as a numbered list, for platforms that
    show plain text only."""
    parts = [outbound.text.strip()]
    sources = outbound.sources_line()
    if sources:
        parts.append(sources)
    if outbound.buttons:
        parts.append("\n".join(
            f"[{i}] {b.label}" + (f" — {b.url}" if b.url else f" — type {b.action}")
            for i, b in enumerate(outbound.buttons, start=1)
        ))
    if outbound.files:
        parts.append("\n".join(f"(file: {f.filename}, {len(f.data)} bytes)"
                               for f in outbound.files))
    return "\n\n".join(p for p in parts if p)
