"""Natural-language interest summaries, written by the LM at background priority, and the
retention sweep; both run from one slow maintenance loop."""

from __future__ import annotations

import asyncio
import logging
import re
import time

from redis.exceptions import WatchError

from bot.profiles.model import Profile
from bot.storage.keys import merchants
from bot.storage.store import CONNECTION_ERRORS, Store
from lm_service.api import (
    ChatMessage,
    GenerationRequest,
    LMBusy,
    LMClient,
    LMTimeout,
    LMUnavailable,
    Priority,
)

log = logging.getLogger(__name__)

SYSTEM = (
    "You write one short note for a shop's staff about what a customer is interested in. "
    "Use only the facts given. One sentence, at most 25 words, no greeting, no names."
)
# One worked example: the 135M default model copies a shape far better than it follows rules.
EXAMPLE_FACTS = (
    "Interests (0-1): sleeping-bags (0.71), winter (0.52), down (0.40)\n"
    "Messages: 9, about products: 6\nRecent messages:\n- is the 0C bag warm enough for "
    "january?\n- how do I wash a down bag\nWrite the note."
)
EXAMPLE_NOTE = "Shopping for a warm down sleeping bag for winter; asked how to wash down."
_UNUSABLE = re.compile(r"\[|\]|^(hi|hello|dear|hey|sure|here)\b|customer's name|as an ai",
                       re.IGNORECASE)
MAX_CHARS = 240
_PER_ROUND = 20


def summary_prompt(profile: Profile) -> str:
    interests = ", ".join(f"{name} ({score:.2f})" for name, score in profile.top_interests(6))
    lines = [
        f"Interests (0-1): {interests or 'none yet'}",
        f"Messages: {profile.messages}, about products: {profile.on_topic}",
    ]
    if profile.bought:
        lines.append("Says they bought: " + ", ".join(sorted(profile.bought)))
    if profile.recent:
        lines.append("Recent messages:")
        lines += [f"- {line}" for line in profile.recent]
    lines.append("Write the note.")
    return "\n".join(lines)


def clean_summary(text: str) -> str:
    """First non-empty line, without quotes or a 'Note:' label, cut at a sentence end."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^(note|summary)\s*:\s*", "", line.strip(" \"'"),
                  flags=re.IGNORECASE).strip(" \"'")
    if len(line) > MAX_CHARS:
        cut = line[:MAX_CHARS]
        line = cut[:cut.rfind(". ") + 1] if ". " in cut else cut.rstrip() + "…"
    return line


def usable(summary: str, profile: Profile) -> bool:
    """A note, not a greeting or a template, that mentions something the member talked about."""
    if len(summary) < 15 or _UNUSABLE.search(summary):
        return False
    words = {w for name, _ in profile.top_interests(8) for w in re.split(r"[-\s]", name)}
    words |= {w for line in profile.recent for w in re.findall(r"[a-z]{4,}", line.lower())}
    return any(w and w in summary.lower() for w in words)


def facts_summary(profile: Profile) -> str:
    """A plain summary from the stored facts alone."""
    names = [name for name, score in profile.top_interests(3) if score >= 0.1]
    parts = [f"Interested in {_join(names)}" if names else "No clear product interest yet"]
    parts.append(f"{profile.on_topic} of {profile.messages} messages about products")
    if profile.bought:
        parts.append("says they bought " + _join(sorted(profile.bought)))
    return "; ".join(parts) + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class Maintenance:
    """Refreshes stale summaries and drops profiles idle past retention."""

    def __init__(self, store: Store, lm: LMClient, retention_days: int,
                 interval_s: float) -> None:
        self.store = store
        self.lm = lm
        self.retention_s = retention_days * 86_400
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="profiles-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def summarize(self, merchant: str, member: str) -> str | None:
        """Write (or refresh) one member's summary; None when there is no profile left."""
        keys = self.store.keys(merchant)
        redis = self.store.redis
        data = await redis.hgetall(keys.profile(member))
        if not data or await redis.sismember(keys.opted_out(), member):
            await redis.zrem(keys.profile_dirty(), member)
            return None
        profile = Profile.from_hash(member, data)
        result = await self.lm.generate(GenerationRequest(
            messages=(ChatMessage("system", SYSTEM), ChatMessage("user", EXAMPLE_FACTS),
                      ChatMessage("assistant", EXAMPLE_NOTE),
                      ChatMessage("user", summary_prompt(profile))),
            max_new_tokens=60, temperature=0.0, priority=Priority.BACKGROUND, deadline_s=300.0,
        ))
        summary = clean_summary(result.text)
        if not usable(summary, profile):
            # A small model sometimes writes a letter instead of a note; the facts still say
            # something true, so they stand in until the next refresh.
            log.info("profiles: model summary for %s unusable (%r); using the facts", member,
                     summary[:80])
            summary = facts_summary(profile)
        try:
            async with redis.pipeline(transaction=True) as pipe:
                # Only onto the profile as it is now: a /forgetme meanwhile must not be undone,
                # and messages folded in meanwhile must not be overwritten.
                await pipe.watch(keys.profile(member))
                current = await pipe.hgetall(keys.profile(member))
                if current:
                    fresh = Profile.from_hash(member, current)
                    fresh.summary, fresh.summary_at = summary, profile.messages
                    pipe.multi()
                    pipe.hset(keys.profile(member), "meta", fresh.to_hash()["meta"])
                    pipe.zrem(keys.profile_dirty(), member)
                    await pipe.execute()
        except WatchError:
            log.info("profiles: %s changed while summarising; next round", member)
            return None
        return summary

    async def summarize_stale(self, merchant: str, limit: int = _PER_ROUND) -> int:
        keys = self.store.keys(merchant)
        members = [str(m) for m in await self.store.redis.zrange(keys.profile_dirty(), 0,
                                                                 limit - 1)]
        done = 0
        for member in members:
            if await self.summarize(merchant, member) is not None:
                done += 1
        return done

    async def sweep(self, merchant: str, now: float | None = None) -> int:
        """Delete profiles idle longer than the retention period; returns how many."""
        keys = self.store.keys(merchant)
        redis = self.store.redis
        cutoff = (time.time() if now is None else now) - self.retention_s
        idle = [str(m) for m in await redis.zrangebyscore(keys.profile_index(), "-inf",
                                                          f"({cutoff}")]
        if not idle:
            return 0
        pipe = redis.pipeline(transaction=False)
        pipe.delete(*(keys.profile(m) for m in idle))
        pipe.zrem(keys.profile_index(), *idle)
        pipe.zrem(keys.profile_dirty(), *idle)
        await pipe.execute()
        return len(idle)

    async def _loop(self) -> None:
        last_sweep = 0.0
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                for merchant in sorted(str(m) for m in
                                       await self.store.redis.smembers(merchants())):
                    if time.monotonic() - last_sweep > 3_600:
                        removed = await self.sweep(merchant)
                        if removed:
                            log.info("profiles: %d idle profiles of %s expired", removed,
                                     merchant)
                    await self.summarize_stale(merchant)
                if time.monotonic() - last_sweep > 3_600:
                    last_sweep = time.monotonic()
            except (LMBusy, LMTimeout, LMUnavailable):
                log.info("profiles: the model is busy; summaries wait for the next round")
            except CONNECTION_ERRORS:
                log.warning("profiles: Redis unreachable; maintenance waits")
            except Exception:
                log.exception("profiles: maintenance round failed")
