"""Days, months and ISO weeks in the merchant's timezone: the buckets growth figures live in."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

DAY_S = 86_400.0


class Calendar:
    """Turns timestamps into bucket names (`2026-11-23`, `2026-11`, `2026-W48`)."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.tz = ZoneInfo(timezone)

    def now(self) -> float:
        return time.time()

    def date(self, ts: float) -> dt.date:
        return dt.datetime.fromtimestamp(ts, self.tz).date()

    def day(self, ts: float) -> str:
        return self.date(ts).isoformat()

    def month(self, ts: float) -> str:
        return self.date(ts).strftime("%Y-%m")

    def week(self, ts: float) -> str:
        year, week, _ = self.date(ts).isocalendar()
        return f"{year}-W{week:02d}"

    def days_back(self, ts: float, count: int) -> list[str]:
        """The `count` days ending with the day of `ts`, oldest first."""
        last = self.date(ts)
        return [(last - dt.timedelta(days=n)).isoformat() for n in range(count - 1, -1, -1)]

    def week_days(self, week_id: str) -> list[str]:
        """The seven days (Monday first) of an ISO week id such as `2026-W48`.

        Raises:
            ValueError: the id is not `YYYY-Www`.
        """
        try:
            year_text, week_text = week_id.split("-W")
            monday = dt.date.fromisocalendar(int(year_text), int(week_text), 1)
        except ValueError:
            raise ValueError(f"week id {week_id!r} must look like 2026-W48") from None
        return [(monday + dt.timedelta(days=n)).isoformat() for n in range(7)]

    def end_of_week(self, week_id: str) -> float:
        """The last second of the week's Sunday, as a timestamp."""
        sunday = dt.date.fromisoformat(self.week_days(week_id)[-1])
        end = dt.datetime.combine(sunday, dt.time(23, 59, 59), self.tz)
        return end.timestamp()

    def previous_week(self, ts: float) -> str:
        """The ISO week before the one `ts` falls in (what a Monday digest reports on)."""
        return self.week(ts - 7 * DAY_S)
