"""Retry-After as the HTTP spec allows it: seconds (Shopify sends "2.0") or an HTTP date."""

from __future__ import annotations

import email.utils
import time

from bot.commerce.http import retry_after


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({"retry-after": "2.0"}) == 2.0
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= (retry_after({"Retry-After": in_ten}) or 0) <= 10.0
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert retry_after({"Retry-After": past}) == 0.0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None
