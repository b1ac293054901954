"""Writes the LM phrasings of every merchant's FAQ in the background, after imports settle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from bot.knowledge.paraphrase import Paraphraser
from bot.storage.keys import merchants

log = logging.getLogger(__name__)

RETRY_S = 60.0  # after a failure (model busy or gone, Redis away), try again this much later


class PhrasingWorker:
    """Watches each merchant's knowledge version, so an import from this process, another
    bot process or `shopkeep import` is seen alike; once it has been quiet for `delay_s`,
    writes the phrasings that are missing. Entries are answerable with their own texts
    meanwhile: phrasings only add ways in."""

    def __init__(self, paraphraser: Paraphraser, delay_s: float) -> None:
        self.paraphraser = paraphraser
        self.delay_s = delay_s
        self.poll_s = max(0.2, min(5.0, delay_s / 4))
        self.passes = 0  # fill passes run (tests wait on it)
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[str, int] = {}  # merchant -> version already handled
        self._pending: dict[str, tuple[int, float]] = {}  # merchant -> (version, seen since)

    async def start(self) -> None:
        if self.paraphraser.count > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="faq-phrasings")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # a background loop must outlive one bad pass
                log.exception("FAQ phrasings: pass failed; retrying in %.0f s", RETRY_S)
                await asyncio.sleep(RETRY_S)
            await asyncio.sleep(self.poll_s)

    async def step(self) -> None:
        """One look at every merchant: note changes, fill those quiet for `delay_s`."""
        knowledge = self.paraphraser.knowledge
        redis = knowledge.store.redis
        now = time.monotonic()
        for merchant in sorted(str(m) for m in await redis.smembers(merchants())):
            version = await knowledge.version(merchant)
            if self._seen.get(merchant) == version:
                continue
            pending = self._pending.get(merchant)
            if pending is None or pending[0] != version:  # new, or changed again: wait anew
                self._pending[merchant] = pending = (version, now)
            if now - pending[1] < self.delay_s:
                continue
            written = await self.paraphraser.fill(merchant)
            self.passes += 1
            if written:
                log.info("FAQ phrasings: %d entries of %s written", written, merchant)
            # Our own writes move the version too: the next look runs one more pass, which
            # finds nothing to do, but never misses an import that landed during this one.
            if self.paraphraser.incomplete:  # the model was busy or away: again, later
                self._pending[merchant] = (version, time.monotonic() + RETRY_S)
                continue
            self._seen[merchant] = version
            del self._pending[merchant]
