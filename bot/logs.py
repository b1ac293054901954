"""Logging set-up: readable or JSON lines (`SHOPKEEP_LOG_JSON=true`), personal data redacted."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import TextIO

from bot.safety.pii import redact

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")


class _RedactingFilter(logging.Filter):
    """Personal data out of every line, whatever logged it (ours, an SDK, a traceback that
    quotes a member's message): log files are disk too."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging itself reports it
            return True
        clean = redact(message)[0]
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_PLAIN.formatException(record.exc_info))[0]
        if record.stack_info:
            record.stack_info = redact(record.stack_info)[0]
        return True


_PLAIN = logging.Formatter()


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "correlation_id", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields given with `extra={...}` are included as they are."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in payload:
                payload[key] = redact(value)[0] if isinstance(value, str) else value
        if record.exc_text:
            payload["exc"] = record.exc_text
        elif record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def make_handler(stream: TextIO, json_lines: bool = False) -> logging.Handler:
    """A handler stamping each record with the current message's correlation id."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RedactingFilter())
    handler.addFilter(_CorrelationFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s] %(message)s"
        ))
    return handler


def configure(level: str = "INFO", json_lines: bool = False) -> None:
    handler = make_handler(sys.stderr, json_lines)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "discord.gateway", "discord.client", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
