"""One pooled aiohttp session per store: timeouts, retries with backoff, Retry-After honoured."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.commerce.connector import StoreAuthError, StoreUnavailable

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `max_wait_s` caps one wait: a store that asks for a longer pause
    (Retry-After) is reported unavailable at once instead of holding a member for minutes."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 30.0
    timeout_s: float = 15.0


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the text when it is not JSON


class HttpClient:
    """A pooled session against one base URL. Errors come out as `StoreUnavailable`
    (transport, 5xx and 429 past the retries) or `StoreAuthError` (401/403); other statuses
    are returned for the connector to read (404 is an answer, not a failure)."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None,
                 policy: RetryPolicy | None = None,
                 ssl_context: ssl.SSLContext | None = None, pool_size: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.policy = policy or RetryPolicy()
        self.ssl_context = ssl_context
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.pool_size,
                                             ssl=self.ssl_context or True)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_s),
                raise_for_status=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json_body: Any = None, policy: RetryPolicy | None = None) -> HttpResponse:
        """Send one request, retrying what a retry can fix.

        Raises:
            StoreUnavailable: no usable answer within the policy's attempts and waits.
            StoreAuthError: the store refused the credentials (401 or 403).
        """
        if self._session is None:
            await self.start()
        assert self._session is not None
        rules = policy or self.policy
        url = self.url(path)
        last = "no attempt made"
        for attempt in range(1, rules.attempts + 1):
            wait: float | None
            try:
                async with self._session.request(
                        method, url, params=params, json=json_body,
                        timeout=aiohttp.ClientTimeout(total=rules.timeout_s)) as resp:
                    text = await resp.text()
                    response = HttpResponse(resp.status, dict(resp.headers), _parse(text))
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = type(exc).__name__
                wait = _backoff(rules, attempt)
            else:
                if response.status in (401, 403):
                    raise StoreAuthError(f"{method} {path}: HTTP {response.status} "
                                         f"{_short(response.body)}")
                if response.status not in RETRY_STATUSES:
                    return response
                last = f"HTTP {response.status}"
                wait = retry_after(response.headers)
                if wait is None:
                    wait = _backoff(rules, attempt)
                elif wait > rules.max_wait_s:
                    raise StoreUnavailable(f"{method} {path}: asked to wait {wait:.0f} s")
            if attempt == rules.attempts:
                break
            log.info("store %s %s failed (%s); retry %d in %.2f s", method, path, last,
                     attempt, wait)
            await asyncio.sleep(wait)
        raise StoreUnavailable(f"{method} {path}: {last} after {rules.attempts} attempts")


def retry_after(headers: dict[str, str]) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff(rules: RetryPolicy, attempt: int) -> float:
    base = rules.backoff_s * (2 ** (attempt - 1))
    return min(rules.max_wait_s, base + random.uniform(0, rules.backoff_s))


def _parse(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _short(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("errors") or body.get("code") or "")[:200]
    return str(body)[:200]
