"""Growth fixtures: the feature on a started store over the test Redis, and a router for it.

Referrals, linking, analytics and the digest never call the language model, so these
fixtures build the core without one (`lm` is None and any use would fail loudly); tests
that need the model use the session `lm_client` and a whole App.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from bot.commands.registry import CommandRegistry
from bot.core import Core
from bot.events import CommunityRef, Inbound, MemberRef, Outbound, Platform, Privilege
from bot.growth import GrowthFeature
from bot.outbox import Outbox
from bot.router import Router
from bot.settings import load_settings
from bot.storage.store import Store
from bot.tenancy import Tenancy
from lm_service.api import LMClient
from tests.support.tenancy import approve

Build = Callable[..., Awaitable[GrowthFeature]]


@pytest.fixture
async def make_growth(redis_url: str, redis_client: aioredis.Redis,
                      tmp_path: Path) -> AsyncIterator[Build]:
    """`await make_growth(**settings)`: a started growth feature; several share one Redis."""
    stores: list[Store] = []

    async def build(**overrides: Any) -> GrowthFeature:
        settings = load_settings(redis_url=redis_url, data_dir=tmp_path, demo_shop=False,
                                 **overrides)
        store = Store(settings.redis_url, settings.data_dir)
        await store.start()
        stores.append(store)
        core = Core(settings, store, cast(LMClient, None), Tenancy(store),
                    CommandRegistry(), Outbox())
        feature = GrowthFeature(core)
        core.registry.register_all(feature.commands())
        await feature.start()
        return feature

    yield build
    for store in stores:
        await store.stop()


@pytest.fixture
async def growth(make_growth: Build) -> GrowthFeature:
    return await make_growth()


def inbound(platform: Platform, user: str, text: str, *, ts: float | None = None,
            role: Privilege = Privilege.MEMBER, community: str | None = "c1") -> Inbound:
    """A message as an adapter would deliver it (in community `community`, or a DM)."""
    place = CommunityRef(platform, community, "general") if community else None
    extra: dict[str, Any] = {} if ts is None else {"sent_at": ts}
    return Inbound(platform=platform, member=MemberRef(platform, user, f"name-{user}"),
                   text=text, community=place, privilege=role, **extra)


async def say(feature: GrowthFeature, message: Inbound) -> list[Outbound]:
    """Route one message through the real router with only the growth feature wired in,
    in a community approved for the default merchant (or a DM)."""
    core = feature.core
    if message.community is not None:  # the tests write in the shop's own communities
        await approve(core.store.redis, message.community.key)
    router = Router(core.registry, core.tenancy, observers=[feature])
    replies = await router.handle(message)
    await router.drain()
    return replies
