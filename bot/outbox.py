"""Sends messages that are not replies (campaigns, digests, DMs) through the right adapter."""

from __future__ import annotations

from bot.errors import UserInputError
from bot.events import CommunityRef, Outbound, Platform
from bot.ops.metrics import record_sent
from bot.ports import Adapter


class Outbox:
    def __init__(self) -> None:
        self._adapters: dict[Platform, Adapter] = {}

    def attach(self, adapter: Adapter) -> None:
        self._adapters[adapter.platform] = adapter

    def detach_all(self) -> None:
        self._adapters.clear()

    @property
    def platforms(self) -> list[Platform]:
        return list(self._adapters)

    def adapter(self, platform: Platform) -> Adapter:
        try:
            return self._adapters[platform]
        except KeyError:
            raise UserInputError(
                f"{platform.value} is not connected; set its token and restart Shopkeep."
            ) from None

    async def send(self, outbound: Outbound) -> list[str]:
        """Deliver `outbound` to its destination; returns the platform message ids."""
        if outbound.destination is None:
            raise ValueError("Outbox.send needs an Outbound with a destination")
        platform = outbound.destination.platform
        ids = await self.adapter(platform).send(outbound)
        record_sent(platform.value, "post", len(ids))
        return ids

    async def create_invite(self, community: CommunityRef, name: str) -> str | None:
        """A personal invite link to `community` made by its platform's adapter, or None when
        that platform is not connected or cannot make one."""
        adapter = self._adapters.get(community.platform)
        return None if adapter is None else await adapter.create_invite(community, name)
