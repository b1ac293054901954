"""Who owns a community, what a member may do there, and when the bot speaks up unasked."""

from __future__ import annotations

import re

from bot.events import CommunityRef, Inbound, Platform, Privilege
from bot.storage.keys import community_merchant
from bot.storage.store import Store

_QUESTION_WORDS = re.compile(
    r"^(how|what|when|where|which|who|why|can|could|do|does|did|is|are|will|would|should|"
    r"any|anyone|hw|wat|wen)\b",
    re.IGNORECASE,
)


def looks_like_question(text: str) -> bool:
    stripped = text.strip()
    return stripped.endswith("?") or bool(_QUESTION_WORDS.match(stripped))


class Tenancy:
    def __init__(self, store: Store, default_merchant: str = "default",
                 admin_ids: tuple[str, ...] | list[str] = ()) -> None:
        self.store = store
        self.default_merchant = default_merchant
        self.admin_ids = frozenset(admin_ids)

    async def merchant_for(self, inbound: Inbound) -> str:
        """The merchant a message belongs to: explicit, configured for its community, or the
        default merchant."""
        return await self.merchant_of(inbound.community, inbound.merchant)

    async def merchant_of(self, community: CommunityRef | None, explicit: str | None = None) -> str:
        """The merchant of `community` (None: a direct message), unless `explicit` names one."""
        if explicit:
            return explicit
        if community is None:
            return self.default_merchant
        owner = await self.store.redis.get(community_merchant(community.key))
        return str(owner) if owner else self.default_merchant

    async def link_community(self, community_key: str, merchant: str) -> None:
        await self.store.redis.set(community_merchant(community_key), merchant)
        await self.store.redis.sadd(self.store.keys(merchant).communities(), community_key)

    async def privilege_of(self, inbound: Inbound, merchant: str) -> Privilege:
        """What the platform says, raised to ADMIN for accounts the merchant configured."""
        if inbound.member.key in self.admin_ids:
            return max(inbound.privilege, Privilege.ADMIN)
        return inbound.privilege

    async def should_answer(self, inbound: Inbound, merchant: str) -> bool:
        """Direct messages, mentions and replies always; in a help channel, questions."""
        if inbound.is_direct or inbound.mentions_bot or inbound.reply_to_bot:
            return True
        if inbound.platform == Platform.CONSOLE:
            return True
        assert inbound.community is not None
        if not looks_like_question(inbound.text):
            return False
        return await self.is_help_channel(merchant, inbound.community.channel_key) or (
            inbound.community.thread_id is not None
            and await self.is_help_channel(
                merchant, f"{inbound.platform.value}:{inbound.community.channel_id}"
            )
        )

    async def is_help_channel(self, merchant: str, channel_key: str) -> bool:
        return bool(await self.store.redis.sismember(
            self.store.keys(merchant).help_channels(), channel_key
        ))
