"""Schedules as moderators type them — ISO time, `every 2h`, cron — checked, and their next runs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.campaigns.models import ScheduleSpec, format_seconds
from bot.errors import UserInputError

MIN_INTERVAL_S = 60  # anything faster is spam, whatever the moderator meant
MAX_AHEAD_S = 366 * 86400  # the furthest a run may be planned, and the longest interval
_LONGEST = "366d (a year)"
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400, "w": 604800, "week": 604800}
# Possessive: a moderator's thousands of digits are read once, never backtracked over.
_DURATION_PART = re.compile(r"(?<!\d)(\d++)\s*+([a-z]++)")
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_EXAMPLES = ("Use an ISO time (2026-12-01T09:00), 'in 10m', 'every 2h', or cron "
             "('cron 0 9 * * mon').")


def parse_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise UserInputError(
            f"Unknown time zone {name!r}; use an IANA name such as UTC, Europe/Berlin or "
            "America/New_York."
        ) from None


def parse_duration(text: str) -> int:
    """'1h30m', '45 minutes', '2d' -> seconds.

    Raises:
        UserInputError: the text is not a duration.
    """
    compact = text.strip().lower()
    shown = compact if len(compact) <= 40 else compact[:37] + "..."
    total, consumed = 0, ""
    for match in _DURATION_PART.finditer(compact):
        number, unit = match.group(1), match.group(2)
        if unit not in _UNITS and unit.endswith("s") and unit[:-1] in _UNITS:
            unit = unit[:-1]  # hours, mins, weeks
        if unit not in _UNITS:
            raise UserInputError(f"Unknown time unit {unit[:20]!r} in {shown!r}; use s, m, h, "
                                 "d or w.")
        if len(number.lstrip("0")) > 9 or total + int(number) * _UNITS[unit] > MAX_AHEAD_S:
            raise UserInputError(f"{shown!r} is too long; the longest is {_LONGEST}.")
        total += int(number) * _UNITS[unit]
        consumed += match.group(0)
    if not total or re.sub(r"\s", "", consumed) != re.sub(r"\s", "", compact):
        raise UserInputError(f"{shown!r} is not a duration; write it like 30m, 2h or 1h30m.")
    return total


def parse_schedule(text: str, timezone: str, now: datetime | None = None) -> ScheduleSpec:
    """Turn a moderator's schedule into a `ScheduleSpec`.

    Accepts an ISO date-time (one time; a time without offset is read in `timezone`),
    `in <duration>` (one time), `every <duration>` / `interval <duration>`, and
    `cron <min> <hour> <day> <month> <weekday>` (or the five fields alone).

    Raises:
        UserInputError: naming what is wrong (the field of a cron expression, a date in the
        past, an unknown time zone, an interval that is too short).
    """
    zone = parse_timezone(timezone)
    now = (now or datetime.now(zone)).astimezone(zone).replace(microsecond=0)
    raw = text.strip()
    lowered = raw.lower()
    if not raw:
        raise UserInputError("The schedule is empty. " + _EXAMPLES)
    head, _, rest = lowered.partition(" ")
    if head in ("every", "interval"):
        seconds = parse_duration(rest)
        if seconds < MIN_INTERVAL_S:
            raise UserInputError(f"An interval of {format_seconds(seconds)} is too short; the "
                                 f"shortest is {format_seconds(MIN_INTERVAL_S)}.")
        anchor = now + timedelta(seconds=seconds)
        return ScheduleSpec("interval", str(seconds), zone.key, anchor=anchor.isoformat())
    if head == "in":
        when = now + timedelta(seconds=parse_duration(rest))
        return ScheduleSpec("once", when.isoformat(), zone.key)
    if head == "cron" or len(raw.split()) == 5:
        expr = rest if head == "cron" else lowered
        _check_cron(expr, zone)
        return ScheduleSpec("cron", " ".join(expr.split()), zone.key)
    return ScheduleSpec("once", _parse_when(raw, zone, now).isoformat(), zone.key)


def _parse_when(raw: str, zone: ZoneInfo, now: datetime) -> datetime:
    try:
        when = datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw else raw)
    except ValueError:
        raise UserInputError(f"I can't read the schedule {raw!r}. " + _EXAMPLES) from None
    when = when.replace(tzinfo=zone) if when.tzinfo is None else when
    if when <= now:
        raise UserInputError(
            f"{raw} is in the past (it is now {now.strftime('%Y-%m-%d %H:%M')} "
            f"{zone.key}); pick a later time."
        )
    if when - now > timedelta(seconds=MAX_AHEAD_S):
        latest = now + timedelta(seconds=MAX_AHEAD_S)
        raise UserInputError(f"{raw} is too far ahead; pick a time within {_LONGEST}, before "
                             f"{latest.strftime('%Y-%m-%d %H:%M')} {zone.key}.")
    return when


def _check_cron(expr: str, zone: ZoneInfo) -> None:
    fields = expr.split()
    if len(fields) != 5:
        raise UserInputError(
            f"A cron schedule has five fields (minute hour day month weekday), but "
            f"{expr!r} has {len(fields)}; e.g. 'cron 0 9 * * mon' is 09:00 every Monday."
        )
    for name, value in zip(_CRON_FIELDS, fields, strict=True):
        try:
            CronTrigger(timezone=zone, **{name: value})
        except ValueError as exc:
            readable = name.replace("_", " ")
            raise UserInputError(
                f"Bad cron {readable} field {value!r} in {expr!r}: {exc}."
            ) from None
    if next_runs(ScheduleSpec("cron", expr, zone.key), datetime.now(zone), 1) == []:
        raise UserInputError(f"The cron schedule {expr!r} never fires.")


def build_trigger(spec: ScheduleSpec) -> BaseTrigger:
    zone = ZoneInfo(spec.timezone)
    if spec.kind == "cron":
        return CronTrigger.from_crontab(spec.expr, timezone=zone)
    if spec.kind == "interval":
        return IntervalTrigger(seconds=int(spec.expr), start_date=datetime.fromisoformat(
            spec.anchor), timezone=zone)
    raise ValueError(f"no recurring trigger for a {spec.kind} schedule")


def next_run_after(spec: ScheduleSpec, moment: datetime) -> datetime | None:
    """The first run strictly after `moment`, or None when the schedule is done."""
    if spec.kind == "once":
        when = datetime.fromisoformat(spec.expr)
        return when if when > moment else None
    after = moment + timedelta(microseconds=1)
    result: datetime | None = build_trigger(spec).get_next_fire_time(None, after)
    return result


def next_runs(spec: ScheduleSpec, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` run times after `after` (fewer for a one-time schedule)."""
    times: list[datetime] = []
    moment = after
    while len(times) < count:
        when = next_run_after(spec, moment)
        if when is None:
            break
        times.append(when)
        moment = when
    return times


def describe_runs(times: list[datetime], timezone: str) -> str:
    zone = ZoneInfo(timezone)
    return "\n".join(f"  • {t.astimezone(zone).strftime('%a %Y-%m-%d %H:%M:%S %Z')}"
                     for t in times)
