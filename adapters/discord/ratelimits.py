"""Counts discord.py's rate-limit sleeps in the metrics.

discord.py retries a 429 itself, sleeping `retry_after`, and reports it only through its
`discord.http` log; a filter on that logger is the one place to see it.
"""

from __future__ import annotations

import logging

from bot.ops.metrics import record_rate_limit_wait

# discord.http's message for a 429 it will sleep on and retry (discord.py 2.x).
_RETRYING = "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds."


class RateLimitMeter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _RETRYING and isinstance(record.args, tuple) and len(record.args) == 3:
            seconds = record.args[2]
            if isinstance(seconds, int | float):
                record_rate_limit_wait("discord", float(seconds))
        return True  # a meter, not a filter: every record still goes on


def meter_rate_limits() -> None:
    """Install the meter once per process (several adapters may start)."""
    logger = logging.getLogger("discord.http")
    if not any(isinstance(f, RateLimitMeter) for f in logger.filters):
        logger.addFilter(RateLimitMeter())
