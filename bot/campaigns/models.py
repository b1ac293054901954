"""Campaign, target and run-record shapes, and how they are written to and read from Redis."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.errors import UserInputError
from bot.events import Destination, Inbound, Platform

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
DM_TARGET = "dm"


def validate_name(name: str) -> str:
    """Campaign names are slugs so that they can sit in keys and in button actions."""
    cleaned = name.strip().lower()
    if not NAME_RE.match(cleaned):
        raise UserInputError(
            f"Campaign name {name!r} must be 1-40 lowercase letters, digits, '-' or '_' "
            "(e.g. spring-sale)."
        )
    return cleaned


@dataclass(frozen=True)
class Target:
    """A channel on a platform (`discord:123`, `telegram:-100200:7` with a thread) or `dm`,
    meaning direct messages to the opted-in members of the campaign's segment."""

    platform: Platform | None  # None for the DM target
    channel_id: str = ""
    thread_id: str | None = None

    @property
    def is_dm(self) -> bool:
        return self.platform is None

    @property
    def key(self) -> str:
        if self.platform is None:
            return DM_TARGET
        thread = f":{self.thread_id}" if self.thread_id else ""
        return f"{self.platform.value}:{self.channel_id}{thread}"

    def destination(self) -> Destination:
        assert self.platform is not None, "a DM target has one destination per member"
        return Destination(self.platform, channel_id=self.channel_id, thread_id=self.thread_id)

    @classmethod
    def parse(cls, text: str) -> Target:
        """`platform:channel[:thread]` or `dm`.

        Raises:
            UserInputError: naming the piece that is wrong.
        """
        raw = text.strip()
        if raw.lower() == DM_TARGET:
            return cls(platform=None)
        platform_name, sep, rest = raw.partition(":")
        if not sep or not rest:
            raise UserInputError(
                f"Target {raw!r} should look like discord:<channel id>, telegram:<chat id> or "
                "dm (direct messages to opted-in members of the segment)."
            )
        try:
            platform = Platform(platform_name.lower())
        except ValueError:
            known = ", ".join(p.value for p in Platform)
            raise UserInputError(
                f"Unknown platform {platform_name!r} in target {raw!r}; use one of {known}."
            ) from None
        channel, _, thread = rest.partition(":")
        if not channel:
            raise UserInputError(f"Target {raw!r} has no channel id.")
        return cls(platform=platform, channel_id=channel, thread_id=thread or None)


def parse_targets(text: str) -> tuple[Target, ...]:
    """A comma-separated list of targets, without duplicates, at least one."""
    targets: dict[str, Target] = {}
    for part in text.split(","):
        if part.strip():
            target = Target.parse(part)
            targets[target.key] = target
    if not targets:
        raise UserInputError("Name at least one target, e.g. discord:1234,telegram:-100567,dm.")
    return tuple(targets.values())


@dataclass(frozen=True)
class ScheduleSpec:
    """What a moderator asked for: `kind` once|interval|cron, its expression and time zone."""

    kind: str
    expr: str  # once: aware ISO time; interval: seconds; cron: the five fields
    timezone: str
    anchor: str = ""  # interval only: the aware ISO time the intervals count from

    def describe(self) -> str:
        if self.kind == "once":
            return f"once at {self.expr} ({self.timezone})"
        if self.kind == "interval":
            return f"every {format_seconds(int(self.expr))} ({self.timezone})"
        return f"cron '{self.expr}' ({self.timezone})"


@dataclass
class Campaign:
    """One campaign of one merchant. `approved_text` is what runs post unless `auto_approve`
    lets each run post freshly written text that passed every check."""

    merchant: str
    name: str
    brief: str
    schedule: ScheduleSpec
    targets: tuple[Target, ...]
    segment: str = ""
    products: tuple[str, ...] = ()  # SKUs, or "category:<name>" entries
    kind: str = "promotion"  # the prompt template: promotion, spotlight, tips, ...
    auto_approve: bool = False
    paused: bool = False
    draft_text: str = ""
    approved_text: str = ""
    approved_by: str = ""
    created_by: str = ""  # member key, told about failures
    notify_platform: str = ""  # where to tell the moderators: a platform and a channel or user
    notify_channel: str = ""
    notify_user: str = ""
    created_at: float = 0.0
    next_run: str = ""  # ISO time of the pending run, kept to rebuild the job after a crash
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Global campaign id handed to the scheduler: `merchant/name`."""
        return f"{self.merchant}/{self.name}"

    @property
    def approved(self) -> bool:
        return self.auto_approve or bool(self.approved_text)

    def to_hash(self) -> dict[str, str]:
        data = asdict(self)
        data["schedule"] = json.dumps(asdict(self.schedule))
        data["targets"] = json.dumps([t.key for t in self.targets])
        data["products"] = json.dumps(list(self.products))
        data["extras"] = json.dumps(self.extras)
        return {k: (("1" if v else "0") if isinstance(v, bool) else str(v))
                for k, v in data.items()}

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Campaign:
        return cls(
            merchant=data["merchant"],
            name=data["name"],
            brief=data.get("brief", ""),
            schedule=ScheduleSpec(**json.loads(data["schedule"])),
            targets=tuple(Target.parse(t) for t in json.loads(data.get("targets", "[]"))),
            segment=data.get("segment", ""),
            products=tuple(json.loads(data.get("products", "[]"))),
            kind=data.get("kind", "promotion"),
            auto_approve=data.get("auto_approve") == "1",
            paused=data.get("paused") == "1",
            draft_text=data.get("draft_text", ""),
            approved_text=data.get("approved_text", ""),
            approved_by=data.get("approved_by", ""),
            created_by=data.get("created_by", ""),
            notify_platform=data.get("notify_platform", ""),
            notify_channel=data.get("notify_channel", ""),
            notify_user=data.get("notify_user", ""),
            created_at=float(data.get("created_at") or 0.0),
            next_run=data.get("next_run", ""),
            extras=json.loads(data.get("extras") or "{}"),
        )


def notify_channel_of(inbound: Inbound) -> str:
    """Where a campaign's moderator is told about its runs when their DMs are closed: the
    channel they set it up in (none when they did it in a DM)."""
    return inbound.community.channel_id if inbound.community is not None else ""


def format_seconds(seconds: int) -> str:
    """5400 -> '1h30m'."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def split_campaign_id(campaign_id: str) -> tuple[str, str]:
    merchant, sep, name = campaign_id.partition("/")
    if not sep or not merchant or not name:
        raise ValueError(f"campaign id {campaign_id!r} is not merchant/name")
    return merchant, name


@dataclass
class Delivery:
    """One target (a channel, or one member's DMs) of one run."""

    target: str
    status: str  # sending | sent | failed | skipped | uncertain
    message_ids: list[str] = field(default_factory=list)
    at: float = 0.0
    detail: str = ""

    @property
    def proven(self) -> bool:
        """Sent, with the platform's message id to show for it."""
        return self.status == "sent" and bool(self.message_ids)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Delivery:
        return cls(**json.loads(raw))
