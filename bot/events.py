"""The platform-neutral message model: what adapters hand the core and what the core hands back."""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


class Platform(enum.StrEnum):
    CONSOLE = "console"
    DISCORD = "discord"
    TELEGRAM = "telegram"


class Privilege(enum.IntEnum):
    """Ordered so that a check reads `caller >= required`."""

    MEMBER = 0
    MODERATOR = 1
    ADMIN = 2
    OWNER = 3

    @classmethod
    def parse(cls, name: str) -> Privilege:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            allowed = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown role {name!r}; use one of {allowed}") from None


@dataclass(frozen=True)
class MemberRef:
    """A platform account. `user_id` is the platform's own id, as a string."""

    platform: Platform
    user_id: str
    display_name: str = ""

    @property
    def key(self) -> str:
        """Stable id used in storage keys: `telegram:12345`."""
        return f"{self.platform.value}:{self.user_id}"


@dataclass(frozen=True)
class CommunityRef:
    """Where a message was written: a guild/group, the channel in it, and a thread or topic."""

    platform: Platform
    community_id: str
    channel_id: str
    thread_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.platform.value}:{self.community_id}"

    @property
    def channel_key(self) -> str:
        thread = f":{self.thread_id}" if self.thread_id else ""
        return f"{self.platform.value}:{self.channel_id}{thread}"


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class CommandCall:
    """A command the platform already parsed (a Discord slash command's typed options)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inbound:
    """One member message or command, translated from a platform event.

    `community` is None for a direct message. `privilege` is what the platform says about the
    author where they wrote (guild owner or permissions, chat creator or administrator): a
    platform fact, which `bot.tenancy` turns into rights only in a community the merchant
    approved — never in a direct message, where only `admin_ids` grant any.
    `command` is set when the platform delivers a parsed command; otherwise a text starting
    with `/` is parsed by the core.
    """

    platform: Platform
    member: MemberRef
    text: str
    community: CommunityRef | None = None
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    privilege: Privilege = Privilege.MEMBER
    mentions_bot: bool = False
    reply_to_bot: bool = False
    command: CommandCall | None = None
    attachments: tuple[Attachment, ...] = ()
    merchant: str | None = None  # set by the console and the CLI; platforms leave it to routing
    sent_at: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict, compare=False)
    # The merchant's own tests (`shopkeep ask`), never set by a platform adapter: `limited`
    # False skips member rate limits and daily token budgets; `recorded` False (evaluation
    # batches) answers without learning or logging anything (profiles, conversation memory,
    # unanswered questions, /stats), so that each question is answered as a member's first.
    limited: bool = True
    recorded: bool = True

    @property
    def is_direct(self) -> bool:
        return self.community is None


@dataclass(frozen=True)
class MembershipChange:
    """A member joined or left a community (Telegram `chat_member`, Discord member add/remove).

    `invite` is the invite the platform says the member used (Telegram: the invite link's
    name, else its URL). Discord does not say; its adapter passes the guild's invite use counts
    from just before and just after the join instead, and the core compares them.
    """

    platform: Platform
    member: MemberRef
    community: CommunityRef
    joined: bool
    invite: str | None = None
    invite_uses_before: dict[str, int] | None = None
    invite_uses_after: dict[str, int] | None = None
    at: float = field(default_factory=time.time)
    merchant: str | None = None  # explicit (tests, CLI); platforms leave it to routing


@dataclass(frozen=True)
class Citation:
    """A source an answer drew on: an FAQ entry or a catalog product."""

    kind: str  # "faq" | "product"
    id: str
    title: str
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "title": self.title, "url": self.url}


@dataclass(frozen=True)
class Button:
    """A choice the member can click; platforms without buttons render it as numbered text."""

    label: str
    action: str
    url: str | None = None


@dataclass(frozen=True)
class OutboundFile:
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Destination:
    """Where a message goes when it is not a reply: a channel, or a member's direct messages."""

    platform: Platform
    channel_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None


@dataclass(frozen=True)
class Outbound:
    """What the core wants said. Adapters render citations, split long text and never ping all.

    `private` asks the adapter to show it only to the member who asked (an ephemeral reply on
    Discord, a direct message on Telegram). `idempotency_key` lets an adapter refuse to post the
    same thing twice when a send is retried.
    """

    text: str
    citations: tuple[Citation, ...] = ()
    buttons: tuple[Button, ...] = ()
    files: tuple[OutboundFile, ...] = ()
    private: bool = False
    reply_to: str | None = None
    destination: Destination | None = None
    idempotency_key: str | None = None
    answered: bool = True  # False when the bot could not ground an answer in its sources
    extras: dict[str, Any] = field(default_factory=dict, compare=False)

    def sources_line(self) -> str:
        """'Sources: Returns policy · Trailhead 2P Tent', or '' when there are none."""
        if not self.citations:
            return ""
        return "Sources: " + " · ".join(c.title for c in self.citations)
