"""The error a Telegram stand-in method raises: answered as `{"ok": false, ...}` with its code."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None,
                 migrate_to: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to = migrate_to
