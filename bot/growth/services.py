"""The growth feature's plain async API: what adapters, replies, profiles and campaigns call."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from bot.core import Core
from bot.events import Citation, Inbound, MembershipChange
from bot.growth.analytics import Analytics, StatsReport
from bot.growth.gaps import FaqGaps
from bot.growth.linking import Linking
from bot.growth.periods import Calendar
from bot.growth.referrals import (
    JoinOutcome,
    Referrals,
    attribute_invite_uses,
    invite_id,
    parse_start_payload,
)
from bot.knowledge.store import KnowledgeStore
from bot.profiles.model import Profile
from bot.storage.keys import Keys

# A member counts toward an interest when it is among their 3 strongest and not faint.
INTERESTS_PER_MEMBER = 3
INTEREST_FLOOR = 0.05


class Growth:
    """Referrals, linking, analytics and FAQ gaps for every merchant, built from the `Core`.

    Holds no state but the settings: the parts are made on use around the store's current
    Redis client (which exists only once the app has started), so a scheduled job or another
    feature may build its own instance from the same `Core`.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.settings = core.settings
        self.calendar = Calendar(core.settings.timezone)

    @property
    def analytics(self) -> Analytics:
        return Analytics(self.core.store.redis, self.calendar)

    @property
    def linking(self) -> Linking:
        return Linking(self.core.store.redis, self.settings.link_code_ttl_s)

    @property
    def referrals(self) -> Referrals:
        return Referrals(self.core.store.redis, self.calendar, self.linking.canonical,
                         self.settings.referral_stay_days, self.settings.referral_min_messages)

    @property
    def gaps(self) -> FaqGaps:
        return FaqGaps(self.core.store.redis, self.core.lm,
                       KnowledgeStore(self.core.store, self.core.lm),
                       self.settings.gap_similarity, self.settings.gap_max_questions)

    # Called by the router for every non-command message ------------------------------------
    async def observe(self, inbound: Inbound, merchant: str) -> None:
        member = inbound.member.key
        person = await self.linking.canonical(merchant, member)
        first_today = await self.analytics.record_message(
            merchant, inbound.platform.value, member, person, inbound.sent_at)
        await self.referrals.note_message(merchant, member, inbound.sent_at)
        if first_today:
            await self.count_interests(merchant, await self.profile_interests(merchant, person),
                                        inbound.sent_at)

    async def profile_interests(self, merchant: str, person: str) -> list[str]:
        """The person's top interests as the profiles feature has learnt them (counted once
        per active member per day, which is what /stats' "top interests" means)."""
        raw = await self.core.store.redis.hget(Keys(merchant).profile(person), "aff")
        if not raw:
            return []
        profile = Profile(member=person, affinity={
            str(k): float(v) for k, v in json.loads(raw).items()})
        return [name for name, score in profile.top_interests(INTERESTS_PER_MEMBER)
                if score >= INTEREST_FLOOR]

    # Called by other features ----------------------------------------------------------------
    async def record_answer(self, merchant: str, platform: str, answered: bool,
                            citations: Sequence[Citation], ts: float | None = None) -> None:
        """The replies feature reports each question it took, grounded or not."""
        await self.analytics.record_answer(merchant, platform, answered, citations,
                                           time.time() if ts is None else ts)

    async def record_delivery(self, merchant: str, platform: str, count: int = 1,
                              ts: float | None = None) -> None:
        """The campaigns feature reports messages it delivered."""
        await self.analytics.record_count(merchant, platform, "deliveries",
                                          time.time() if ts is None else ts, count)

    async def count_interests(self, merchant: str, interests: Iterable[str],
                              ts: float | None = None) -> None:
        """Count one active member's top interests for the day. `observe` calls it on a
        member's first message of the day; it is deliberately not named `record_interests`,
        which the profiles feature would call for every message and so count twice."""
        await self.analytics.record_interests(merchant, interests,
                                              time.time() if ts is None else ts)

    # Called by adapters when members join or leave a community ---------------------------
    async def member_joined(self, merchant: str, member_key: str, referral_code: str | None,
                            ts: float | None = None) -> JoinOutcome:
        return await self.referrals.member_joined(merchant, member_key, referral_code,
                                                  time.time() if ts is None else ts)

    async def member_joined_via_invite(self, merchant: str, member_key: str,
                                       invite_uses_before: dict[str, int],
                                       invite_uses_after: dict[str, int],
                                       ts: float | None = None) -> JoinOutcome:
        """Discord, best effort: the adapter passes the guild's invite use counts from before
        and after the join; the one invite that moved names the referral code."""
        platform = member_key.partition(":")[0]
        invite = attribute_invite_uses(invite_uses_before, invite_uses_after)
        code = await self.referrals.code_for_invite(merchant, platform, invite)
        return await self.member_joined(merchant, member_key, code, ts)

    async def member_left(self, merchant: str, member_key: str,
                          ts: float | None = None) -> str | None:
        return await self.referrals.member_left(merchant, member_key,
                                                time.time() if ts is None else ts)

    async def member_changed(self, change: MembershipChange, merchant: str) -> None:
        """A join or leave reported by an adapter (`App.membership`)."""
        member_key = change.member.key
        if not change.joined:
            await self.member_left(merchant, member_key, change.at)
        elif change.invite_uses_before is not None and change.invite_uses_after is not None:
            await self.member_joined_via_invite(merchant, member_key, change.invite_uses_before,
                                                change.invite_uses_after, change.at)
        else:
            await self.member_joined(merchant, member_key,
                                     await self._referral_code(merchant, change), change.at)

    async def _referral_code(self, merchant: str, change: MembershipChange) -> str | None:
        """The code behind the invite a member used: a link we named `ref_<code>`, or one we
        registered when `/invite` made it."""
        if not change.invite:
            return None
        return parse_start_payload(change.invite) or await self.referrals.code_for_invite(
            merchant, change.platform.value, invite_id(change.invite))

    async def stats(self, merchant: str, days: int = 7, now: float | None = None,
                    per_platform: bool = True) -> StatsReport:
        """Figures for `/stats`; pending referrals are settled first so credits are current."""
        at = time.time() if now is None else now
        await self.referrals.settle(merchant, at)
        return await self.analytics.report(merchant, at, days, per_platform=per_platform)
