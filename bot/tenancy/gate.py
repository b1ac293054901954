"""Where a message stands: which merchant it belongs to, whether its community is approved,
what its author may do there, and when the bot speaks up unasked."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bot.events import CommunityRef, Inbound, Platform, Privilege
from bot.storage.keys import Keys, merchants
from bot.storage.store import Store
from bot.tenancy.communities import Communities, CommunityTaken
from bot.tenancy.questions import looks_like_question

log = logging.getLogger(__name__)


HINT = ("I only serve communities the shop has connected, so I stay quiet here. An admin can "
        "connect this one with /setup CODE (the shop gets a code from `shopkeep communities "
        "code`), or send /setup to ask the shop's moderators to approve it.")


class Standing(enum.StrEnum):
    LOCAL = "local"  # the operator's own tools: console, `shopkeep ask`, tests
    DIRECT = "direct"  # a direct message to the bot
    APPROVED = "approved"  # a community its merchant approved
    UNAPPROVED = "unapproved"  # a community nobody approved: only the setup step runs


@dataclass(frozen=True)
class Place:
    """The core's verdict on one message. `merchant` is None in an unapproved community;
    `privilege` is what the author may do for that merchant (MEMBER when it is None)."""

    standing: Standing
    merchant: str | None
    privilege: Privilege

    @property
    def served(self) -> bool:
        return self.merchant is not None


class Tenancy:
    """Adapters report platform facts (who wrote where, their role in that group or guild);
    this class decides what they mean. A platform role counts only in a community the
    merchant approved; a direct message carries no role at all, except for the accounts the
    deployment names in `admin_ids`. Being an admin of some group grants nothing."""

    def __init__(self, store: Store, default_merchant: str = "default",
                 admin_ids: Iterable[str] = ()) -> None:
        self.store = store
        self.default_merchant = default_merchant
        self.admin_ids = frozenset(admin_ids)

    @property
    def communities(self) -> Communities:
        return Communities(self.store.redis)

    def is_admin(self, member_key: str) -> bool:
        return member_key in self.admin_ids

    async def place(self, inbound: Inbound) -> Place:
        """Decide the merchant and the author's rights for `inbound`."""
        if inbound.platform == Platform.CONSOLE or inbound.merchant:
            # Local tools carry their merchant and role explicitly; no platform reaches here
            # with either (adapters never set `merchant`).
            return Place(Standing.LOCAL, inbound.merchant or self.default_merchant,
                         inbound.privilege)
        configured = Privilege.ADMIN if self.is_admin(inbound.member.key) else Privilege.MEMBER
        if inbound.community is None:
            return Place(Standing.DIRECT, self.default_merchant, configured)
        owner = await self.communities.owner(inbound.community.key)
        if owner is None:
            return Place(Standing.UNAPPROVED, None, Privilege.MEMBER)
        return Place(Standing.APPROVED, owner, max(inbound.privilege, configured))

    async def hint(self, inbound: Inbound) -> str | None:
        """The one short hint an unapproved community gets: to an admin there who addresses
        the bot, once per community (not per message); None for everyone and everything else."""
        if inbound.community is None or inbound.privilege < Privilege.MODERATOR:
            return None
        addressed = (inbound.command is not None or inbound.text.lstrip().startswith("/")
                     or inbound.mentions_bot or inbound.reply_to_bot)
        if not addressed or not await self.communities.first_hint(inbound.community.key):
            return None
        return HINT

    async def merchant_serving(self, community: CommunityRef | None,
                               explicit: str | None = None) -> str | None:
        """The merchant of `community` (None: a direct message, served by the default
        merchant), or None when that community is not approved."""
        if explicit:
            return explicit
        if community is None or community.platform == Platform.CONSOLE:
            return self.default_merchant
        return await self.communities.owner(community.key)

    async def approve_configured(self, community_keys: Iterable[str], merchant: str) -> None:
        """`SHOPKEEP_COMMUNITIES`, at start: approve each for `merchant`. One that another
        merchant holds stays there (logged): a setting never moves a community silently."""
        for key in community_keys:
            try:
                if await self.communities.approve(merchant, key, "setting",
                                                  "SHOPKEEP_COMMUNITIES"):
                    log.info("community %s approved for %s (SHOPKEEP_COMMUNITIES)", key,
                             merchant)
            except CommunityTaken:
                log.error("SHOPKEEP_COMMUNITIES names %s, but it is connected to another "
                          "merchant; revoke it there first (shopkeep communities revoke)", key)

    async def community_moved(self, old: CommunityRef, new: CommunityRef) -> None:
        """A community changed its id (a Telegram group became a supergroup): its approval
        follows it atomically, then the help-channel marks follow."""
        merchant = await self.communities.move(old.key, new.key)
        for m in await self.store.redis.smembers(merchants()):
            await _rename_channels(self.store, Keys(str(m)).help_channels(), old.key, new.key)
        log.info("community %s moved to %s (merchant: %s)", old.key, new.key,
                 merchant or "none, not approved")

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


async def _rename_channels(store: Store, set_key: str, old: str, new: str) -> None:
    for channel in await store.redis.smembers(set_key):
        channel = str(channel)
        if channel == old or channel.startswith(old + ":"):
            async with store.redis.pipeline(transaction=True) as pipe:
                pipe.srem(set_key, channel)
                pipe.sadd(set_key, new + channel[len(old):])
                await pipe.execute()
