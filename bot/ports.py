"""The border between the core and the platforms: the Adapter ABC and the handler it calls."""

from __future__ import annotations

import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.commands.registry import CommandSpec
from bot.events import CommunityRef, Inbound, MembershipChange, Outbound, OutboundFile, Platform
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

    async def community_moved(self, old: CommunityRef, new: CommunityRef) -> None:
        """A community got a new id (a Telegram group became a supergroup): the core moves
        what it knows about it, approval included."""

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


class DeliveryUncertain(Exception):
    """`Adapter.send` of an idempotent outbound: an earlier attempt sent a request whose
    answer never came (the process died, the network dropped), and the platform cannot show
    whether it was posted. Posting again could repeat it; the caller decides."""


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
        """Post `outbound` to its destination; returns the platform ids of the messages sent.

        With an `idempotency_key`, a repeated call never posts twice: it returns the ids of
        what an earlier attempt posted (never an empty list for something posted), posts
        what provably was not, and raises `DeliveryUncertain` where it cannot tell."""

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


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def save_file(file: OutboundFile, folder: Path) -> Path:
    """Write a file the bot sent into `folder` (the console, `shopkeep ask`): a timestamped,
    sanitised name that never overwrites, readable only by the owner (it may hold a member's
    data).

    Raises:
        OSError: the folder or the file cannot be written.
    """
    name = _UNSAFE_NAME.sub("_", Path(file.filename).name).lstrip("._") or "file"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for n in range(1, 10_000):
        path = folder / (f"{stamp}-{name}" if n == 1 else f"{stamp}-{n}-{name}")
        try:
            with open(path, "xb", opener=_owner_only) as handle:
                handle.write(file.data)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"too many files named {name} in {folder}")


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
