"""Campaign fixtures: the feature on a started store over the test Redis (one per simulated
process), recording adapters at the platform edge, and helpers to route commands.

Runs that post approved text never call the model, so these cores have no LM (any use would
fail loudly); the tests that write posts use the session `lm_client` when it exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from bot.campaigns import CampaignFeature
from bot.commands.registry import CommandRegistry
from bot.core import Core
from bot.events import (
    CommunityRef,
    Destination,
    Inbound,
    MemberRef,
    Outbound,
    Platform,
    Privilege,
)
from bot.outbox import Outbox
from bot.ports import Adapter, AdapterHost, Capabilities, DeliveryUncertain
from bot.router import Router
from bot.settings import load_settings
from bot.storage.store import Store
from bot.tenancy import Tenancy
from lm_service.api import LMClient
from tests.support.demo_catalog import seed_demo_catalog
from tests.support.tenancy import approve


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-run: not an Exception, so nothing catches it."""


class RecordingAdapter(Adapter):
    """The platform edge for tests: keeps what was sent; may crash after N sends or refuse
    some destinations, and drops a repeated idempotency key as a real adapter should."""

    def __init__(self, platform: Platform, crash_after: int | None = None,
                 refuse: set[str] | None = None, max_length: int = 2000,
                 unsure: set[str] | None = None) -> None:
        self.platform = platform
        self.capabilities = Capabilities(max_message_length=max_length)
        self.sent: list[Outbound] = []
        self.crash_after = crash_after
        self.refuse = refuse or set()
        self.unsure = unsure or set()  # where the platform cannot say whether a post landed
        self._seen_keys: dict[str, list[str]] = {}

    async def start(self, host: AdapterHost) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, outbound: Outbound) -> list[str]:
        dest = outbound.destination
        where = (dest.channel_id or dest.user_id or "") if dest else ""
        if where in self.refuse:
            raise RuntimeError(f"403 forbidden: cannot post to {where}")
        if where in self.unsure and outbound.idempotency_key and \
                not outbound.idempotency_key.endswith(":resend"):
            raise DeliveryUncertain("no answer from the platform")
        if self.crash_after is not None and len(self.sent) >= self.crash_after:
            raise SimulatedCrash(f"crashed after {self.crash_after} sends")
        key = outbound.idempotency_key
        if key and key in self._seen_keys:
            return self._seen_keys[key]
        self.sent.append(outbound)
        ids = [f"{self.platform.value}-{len(self.sent)}"]
        if key:
            self._seen_keys[key] = ids
        return ids

    def to(self, where: str) -> list[Outbound]:
        def places(dest: Destination) -> tuple[str | None, ...]:
            # A private notice to a member goes to their DMs; its channel is a fallback only.
            return (dest.user_id,) if dest.user_id else (dest.channel_id,)

        return [o for o in self.sent if o.destination is not None
                and where in (places(o.destination) if o.private
                              else (o.destination.channel_id, o.destination.user_id))]


Build = Callable[..., Awaitable[CampaignFeature]]


@pytest.fixture
async def make_feature(redis_url: str, redis_client: aioredis.Redis,
                       tmp_path: Path) -> AsyncIterator[Build]:
    """`await make_feature(adapters=[...], lm=None, start=True, **settings)`: one simulated
    process; several share the test Redis. Stopped (scheduler, store) at teardown."""
    built: list[tuple[CampaignFeature, Store]] = []

    async def build(adapters: list[Adapter] | None = None, lm: LMClient | None = None,
                    start: bool = True, **overrides: Any) -> CampaignFeature:
        settings = load_settings(redis_url=redis_url, data_dir=tmp_path, demo_shop=False,
                                 **{"campaign_poll_s": 0.2, "campaign_retry_backoff_s": 0.0,
                                    **overrides})
        store = Store(settings.redis_url, settings.data_dir)
        await store.start()
        await store.register_merchant("default")
        outbox = Outbox()
        for adapter in adapters or []:
            outbox.attach(adapter)
        core = Core(settings, store, cast(LMClient, lm),
                    Tenancy(store, settings.merchant, settings.admin_ids), CommandRegistry(),
                    outbox)
        feature = CampaignFeature(core)
        core.registry.register_all(feature.commands())
        if start:
            await feature.start()
        built.append((feature, store))
        return feature

    yield build
    for feature, store in reversed(built):
        await feature.stop()
        await store.stop()


def message(text: str, *, user: str = "mod", role: Privilege = Privilege.MODERATOR,
            platform: Platform = Platform.DISCORD, channel: str | None = "chan-1",
            community: str = "guild-1") -> Inbound:
    place = CommunityRef(platform, community, channel) if channel else None
    return Inbound(platform=platform, member=MemberRef(platform, user, user), text=text,
                   community=place, privilege=role)


async def say(feature: CampaignFeature, text: str, **kwargs: Any) -> str:
    """Route one message through the real router with the campaigns feature wired in, in a
    community approved for the default merchant (or a DM); returns the replies' text joined."""
    core = feature.core
    inbound = message(text, **kwargs)
    if inbound.community is not None:  # the tests write in the shop's own communities
        await approve(core.store.redis, inbound.community.key)
    router = Router(core.registry, core.tenancy, observers=[feature])
    replies = await router.handle(inbound)
    await router.drain()
    return "\n".join(r.text for r in replies)


load_catalog = seed_demo_catalog


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
