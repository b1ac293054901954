"""Long work started from the dashboard (imports, gap searches), with its progress in Redis
so that any page — and any process sharing the store — can show it while it runs."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from bot.errors import UserFacingError
from bot.storage.keys import Keys

log = logging.getLogger(__name__)

JOB_TTL_S = 86_400
# Progress callbacks come from inside the work (an import reports each embedded batch);
# writes to Redis are spaced so a fast import does not become a write storm.
WRITE_EVERY_S = 0.2


@dataclass(frozen=True)
class JobState:
    id: str
    kind: str
    title: str
    state: str  # running | done | failed
    done: int
    total: int
    message: str
    started: float
    finished: float | None

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        return min(99, round(100 * self.done / self.total)) if self.total else 0

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "state": self.state,
                "done": self.done, "total": self.total, "percent": self.percent,
                "message": self.message}


class Progress:
    """Handed to the work: `advance(n)` as it goes (the same callback the CLI's progress bar
    gets from `KnowledgeStore.import_faq`), `stage(text, total)` when it changes step."""

    def __init__(self, jobs: Jobs, merchant: str, job_id: str, total: int) -> None:
        self._jobs, self._merchant, self._id = jobs, merchant, job_id
        self.done, self.total, self.message = 0, total, ""
        self._last_write = 0.0
        self._pending: asyncio.Task[None] | None = None

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        self._write_soon()

    def stage(self, message: str, total: int | None = None) -> None:
        self.message = message
        if total is not None:
            self.done, self.total = 0, total
        self._write_soon(force=True)

    def _write_soon(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < WRITE_EVERY_S:
            return
        self._last_write = now
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self.flush())

    async def settle(self) -> None:
        """Wait for a write in flight, then write the final figures."""
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        await self._jobs.redis.hset(Keys(self._merchant).dashboard_job(self._id), mapping={
            "done": self.done, "total": self.total, "message": self.message})


Work = Callable[[Progress], Awaitable[str]]


class Jobs:
    """Starts work as a task of this process and records its state; `state()` reads it back."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, merchant: str, kind: str, title: str, total: int, work: Work) -> str:
        job_id = secrets.token_hex(6)
        key = Keys(merchant).dashboard_job(job_id)
        await self.redis.hset(key, mapping={
            "kind": kind, "title": title, "state": "running", "done": 0, "total": total,
            "message": "Starting…", "started": time.time(), "finished": ""})
        await self.redis.expire(key, JOB_TTL_S)
        task = asyncio.create_task(self._run(merchant, job_id, total, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job_id

    async def state(self, merchant: str, job_id: str) -> JobState | None:
        if not job_id.isalnum():
            return None
        data = cast(dict[str, str], await self.redis.hgetall(Keys(merchant).dashboard_job(job_id)))
        if not data:
            return None
        return JobState(id=job_id, kind=data.get("kind", ""), title=data.get("title", ""),
                        state=data.get("state", "running"), done=int(data.get("done") or 0),
                        total=int(data.get("total") or 0), message=data.get("message", ""),
                        started=float(data.get("started") or 0),
                        finished=float(data["finished"]) if data.get("finished") else None)

    async def wait_all(self) -> None:
        """Let work in flight finish (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, merchant: str, job_id: str, total: int, work: Work) -> None:
        progress = Progress(self, merchant, job_id, total)
        key = Keys(merchant).dashboard_job(job_id)
        try:
            message = await work(progress)
            state = "done"
        except UserFacingError as exc:
            message, state = exc.message, "failed"
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("dashboard job %s (%s) failed: error %s", job_id, merchant, error_id)
            message, state = (f"Something went wrong on our side (error {error_id}); nothing "
                              "was half-written. Try again, or ask the team."), "failed"
        await progress.settle()
        await self.redis.hset(key, mapping={"state": state, "message": message,
                                            "finished": time.time()})
