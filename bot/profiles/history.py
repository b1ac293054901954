"""Back-fill: a chat export (JSON lines of {platform, community, user, text, ts}) into profiles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import UserInputError
from bot.events import Platform
from bot.parsing import DocumentError, load_json
from bot.profiles.ingest import ProfileWriter
from bot.profiles.queue import IngestItem
from bot.safety.pii import redact
from lm_service.api import LMClient

_PLATFORMS = {p.value for p in Platform}
_SHOWN_ERRORS = 10


@dataclass(frozen=True)
class HistoryLine:
    platform: str
    community: str | None
    user: str
    text: str
    ts: float

    @property
    def member(self) -> str:
        return f"{self.platform}:{self.user}"


@dataclass(frozen=True)
class ImportResult:
    messages: int
    members: int
    skipped: int  # empty lines of text and commands, which say nothing about interests


def parse_history(path: Path) -> list[HistoryLine]:
    """Read and check the whole file first, so a broken export changes nothing.

    Raises:
        UserInputError: listing the first problems by line number.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{path} does not exist.") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{path.name} is not UTF-8 text; export it as JSON lines.") from None
    lines: list[HistoryLine] = []
    errors: list[str] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append(_parse_line(line))
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        more = len(errors) - _SHOWN_ERRORS
        listed = "\n  ".join(errors[:_SHOWN_ERRORS])
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise UserInputError(f"{path.name} has {len(errors)} bad line(s); nothing was "
                             f"imported:\n  {listed}{tail}")
    lines.sort(key=lambda h: h.ts)  # profiles fold messages in the order they were written
    return lines


def _parse_line(line: str) -> HistoryLine:
    try:
        item = load_json(line)
    except DocumentError as exc:
        raise ValueError(f"not valid JSON ({exc.problem})") from None
    if not isinstance(item, dict):
        raise ValueError('expected an object like {"platform": "telegram", "community": '
                         '"-100123", "user": "42", "text": "...", "ts": 1700000000}')
    platform = str(item.get("platform", "")).strip().lower()
    if platform not in _PLATFORMS:
        raise ValueError(f"platform must be one of {', '.join(sorted(_PLATFORMS))}, "
                         f"not {item.get('platform')!r}")
    user = item.get("user")
    if not isinstance(user, str | int) or isinstance(user, bool) or not str(user).strip():
        raise ValueError("user (the member's platform id) is missing")
    text = item.get("text")
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    community = item.get("community")
    if community is not None and not isinstance(community, str | int):
        raise ValueError("community must be an id (string or number) or null")
    # Redacted as it is read, like live messages: the profile keeps snippets of it.
    return HistoryLine(platform, _community_key(platform, community), str(user).strip(),
                       redact(text)[0], _timestamp(item.get("ts")))


def _community_key(platform: str, community: Any) -> str | None:
    if community is None or str(community).strip() == "":
        return None
    text = str(community).strip()
    return text if text.startswith(f"{platform}:") else f"{platform}:{text}"


def _timestamp(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError("ts (when it was written) is missing")
    if isinstance(value, int | float):
        seconds = float(value)
        seconds = seconds / 1000 if seconds > 1e11 else seconds  # milliseconds, as some exports
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"ts {str(value)[:40]!r} is neither epoch seconds nor an ISO 8601 "
                             "time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        seconds = parsed.timestamp()
    # Profiles age and expire by these times: one from the far future would never expire.
    latest = dt.datetime.now(dt.UTC).timestamp() + 86_400
    if not 0 <= seconds <= latest:  # also NaN
        raise ValueError(f"ts {str(value)[:40]} is out of range: between 1970-01-01 and now")
    return seconds


async def import_history(writer: ProfileWriter, lm: LMClient, merchant: str,
                         lines: Sequence[HistoryLine], batch: int = 64,
                         progress: Callable[[int], None] | None = None) -> ImportResult:
    """Fold every line into its member's profile, `batch` messages per embedding call."""
    useful = [h for h in lines if h.text.strip() and not h.text.lstrip().startswith("/")]
    skipped = len(lines) - len(useful)
    if progress is not None and skipped:
        progress(skipped)
    for start in range(0, len(useful), batch):
        chunk = useful[start:start + batch]
        vectors = await lm.embed([h.text for h in chunk])
        items = [IngestItem(merchant, h.member, h.platform, h.text, h.ts, h.community)
                 for h in chunk]
        await writer.write(items, vectors)
        if progress is not None:
            progress(len(chunk))
    return ImportResult(len(useful), len({h.member for h in useful}), skipped)
