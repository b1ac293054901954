"""Cross-platform account linking: one-time codes, one identity, one merged profile."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import redis.asyncio as aioredis

from bot.errors import UserInputError
from bot.profiles.model import AFFINITY_KEEP, RECENT_KEEP, Profile
from bot.storage.keys import Keys

_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


@dataclass(frozen=True)
class LinkResult:
    person: str  # the canonical member key both accounts now resolve to
    accounts: tuple[str, ...]


async def canonical_member(redis: aioredis.Redis, merchant: str, member_key: str) -> str:
    """The member key that stands for this account's person (itself unless linked).

    Other features (profiles, analytics) call this so that a linked person has one profile.
    """
    found = await redis.hget(Keys(merchant).identity(), member_key)
    return str(found) if found else member_key


class Linking:
    def __init__(self, redis: aioredis.Redis, code_ttl_s: int) -> None:
        self.redis = redis
        self.code_ttl_s = code_ttl_s

    async def canonical(self, merchant: str, member_key: str) -> str:
        return await canonical_member(self.redis, merchant, member_key)

    async def accounts(self, merchant: str, member_key: str) -> list[str]:
        """Every account linked with this one (itself included), sorted."""
        person = await self.canonical(merchant, member_key)
        identity = await self.redis.hgetall(Keys(merchant).identity())
        return sorted({person, member_key} | {str(m) for m, p in identity.items() if p == person})

    async def issue(self, merchant: str, member_key: str) -> str:
        """A fresh one-time code for `member_key`, valid for `code_ttl_s` seconds."""
        keys = Keys(merchant)
        while True:
            code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
            if await self.redis.set(keys.link_code(code), member_key, nx=True,
                                    ex=self.code_ttl_s):
                return code

    async def redeem(self, merchant: str, member_key: str, code: str) -> LinkResult:
        """Join the code's account and `member_key` into one person, then merge profiles.

        Raises:
            UserInputError: the code is unknown, expired or used, or the link is not allowed.
        """
        keys = Keys(merchant)
        normalised = code.strip().upper().replace("-", "").replace(" ", "")
        # GETDEL makes the code single-use even when two redemptions race.
        issuer = await self.redis.getdel(keys.link_code(normalised))
        if issuer is None:
            raise UserInputError("That link code is unknown, expired or already used. Run /link "
                                 "on your other account for a fresh one.")
        issuer = str(issuer)
        if issuer == member_key:
            raise UserInputError("Run /link with that code from your *other* account (on the "
                                 "other platform), not the one that made it.")
        mine = await self.accounts(merchant, member_key)
        theirs = await self.accounts(merchant, issuer)
        if set(mine) & set(theirs):
            raise UserInputError("These accounts are already linked.")
        clash = {_platform(a) for a in mine} & {_platform(a) for a in theirs}
        if clash:
            raise UserInputError(f"Only one {sorted(clash)[0]} account can be linked to a "
                                 "person; unlink is not available, so ask a moderator.")
        person = await self.canonical(merchant, issuer)
        other = await self.canonical(merchant, member_key)
        accounts = tuple(sorted({*mine, *theirs}))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.identity(), mapping={a: person for a in accounts if a != person})
            await pipe.execute()
        await merge_profile_records(self.redis, merchant, person, other)
        return LinkResult(person, accounts)


def _platform(member_key: str) -> str:
    return member_key.partition(":")[0]


def merge_profiles(person: Profile, other: Profile) -> Profile:
    """One profile from two: counts add up, interests keep the stronger score of either,
    the taste vector is the message-weighted mean, seen-times span both."""
    merged = Profile(member=person.member)
    merged.messages = person.messages + other.messages
    merged.on_topic = person.on_topic + other.on_topic
    vectors = [(p.vector, max(p.messages, 1)) for p in (person, other) if p.vector is not None]
    if vectors:
        mean = np.sum([v * w for v, w in vectors], axis=0) / sum(w for _, w in vectors)
        norm = float(np.linalg.norm(mean))
        merged.vector = np.asarray(mean / norm if norm > 0 else mean, dtype=np.float32)
    names = set(person.affinity) | set(other.affinity)
    best = sorted(((max(person.affinity.get(n, 0.0), other.affinity.get(n, 0.0)), n)
                   for n in names), reverse=True)[:AFFINITY_KEEP]
    merged.affinity = {n: v for v, n in best}
    firsts = [p.first_seen for p in (person, other) if p.first_seen]
    merged.first_seen = min(firsts) if firsts else 0.0
    merged.last_seen = max(person.last_seen, other.last_seen)
    merged.platforms = person.platforms | other.platforms
    merged.communities = person.communities | other.communities
    merged.bought = person.bought | other.bought
    newest_last = sorted((person, other), key=lambda p: p.last_seen)
    merged.recent = [*newest_last[0].recent, *newest_last[1].recent][-RECENT_KEEP:]
    # The longer-known summary stays until the profiles feature rewrites it for the merge.
    richer = max((person, other), key=lambda p: p.messages)
    merged.summary, merged.summary_at = richer.summary, 0
    return merged


async def merge_profile_records(redis: aioredis.Redis, merchant: str, person: str,
                                other: str) -> Profile | None:
    """Fold `other`'s stored profile into `person`'s and delete it. None if neither exists."""
    keys = Keys(merchant)
    stored_person = await redis.hgetall(keys.profile(person))
    stored_other = await redis.hgetall(keys.profile(other))
    if not stored_person and not stored_other:
        return None
    merged = merge_profiles(Profile.from_hash(person, stored_person),
                            Profile.from_hash(other, stored_other))
    ttl = max(await redis.ttl(keys.profile(person)), await redis.ttl(keys.profile(other)))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.profile(person))
        pipe.hset(keys.profile(person), mapping=merged.to_hash())
        if ttl > 0:
            pipe.expire(keys.profile(person), ttl)
        pipe.delete(keys.profile(other))
        pipe.zrem(keys.profile_index(), other)
        pipe.zadd(keys.profile_index(), {person: merged.last_seen})
        await pipe.execute()
    return merged
