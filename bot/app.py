"""Wires every long-lived part together, in one place, and starts and stops them in order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, TypeVar

import redis.asyncio as aioredis

from bot.campaigns import CampaignFeature
from bot.commands.builtin import BuiltinCommands
from bot.commands.registry import CommandRegistry, CommandSpec
from bot.commerce.feature import CommerceFeature, OrdersFirst
from bot.core import Core, Feature
from bot.dashboard import DashboardFeature
from bot.demo import load_demo_if_empty
from bot.events import CommunityRef, Inbound, MembershipChange, Outbound
from bot.growth import GrowthFeature
from bot.knowledge.feature import KnowledgeFeature
from bot.ops.instrument import InstrumentedLM
from bot.ops.server import OpsFeature
from bot.outbox import Outbox
from bot.ports import Adapter
from bot.profiles import ProfilesFeature
from bot.replies.pipeline import ReplyPipeline
from bot.router import ConversationHandler, MessageObserver, Router
from bot.settings import Settings
from bot.storage.store import Store
from bot.tenancy import Tenancy
from bot.tenancy.feature import TenancyFeature
from lm_service.api import GenerationRequest, GenerationResult, LMClient

log = logging.getLogger(__name__)
F = TypeVar("F")


class FrontEnd(Protocol):
    """A long-lived front end beside the chat adapters (the web dashboard): started once the
    app is up, stopped before it."""

    async def start(self, app: App) -> None: ...

    async def stop(self) -> None: ...


class _Builtins:
    def __init__(self, core: Core) -> None:
        self._commands = BuiltinCommands(core.registry, core.store)

    def commands(self) -> list[CommandSpec]:
        return self._commands.specs()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def build_features(core: Core) -> list[Feature]:
    """Every feature of the product, in start order. A feature that answers members is a
    `ConversationHandler`; one that learns from every message is a `MessageObserver`."""
    features: list[Feature] = [_Builtins(core), TenancyFeature(core)]  # /setup, /community
    replies = ReplyPipeline(core)
    features += [KnowledgeFeature(core), replies]  # /faq, /catalog; answers
    features.append(OpsFeature(core))  # /healthz /readyz /metrics when metrics_port is set
    profiles = ProfilesFeature(core)  # learns interests; /recommend, /mydata, /forgetme
    features.append(profiles)
    campaigns = CampaignFeature(core)  # /campaign, /post, /offers; scheduled runs
    features.append(campaigns)
    growth = GrowthFeature(core, campaigns)  # referrals, /link, /stats, digest job
    features.append(growth)
    replies.answer_listeners.append(growth.record_answer)  # /stats: answered vs not, sources
    campaigns.runner.delivery_listeners.append(growth.record_delivery)  # /stats: deliveries
    features.append(CommerceFeature(core))  # store connector: order status, catalog sync
    features.append(DashboardFeature(core))  # /dashboard sign-in links for the web front end
    profiles.register_features(features)  # /forgetme reaches each feature's forget_member
    return features


class App:
    """The whole bot. `lm` may be passed in (tests share one loaded model); otherwise it is
    built from the settings and owned by the app."""

    def __init__(self, settings: Settings, adapters: Sequence[Adapter] = (),
                 lm: LMClient | None = None, front_ends: Sequence[FrontEnd] = ()) -> None:
        self.settings = settings
        self.adapters = list(adapters)
        self.front_ends = list(front_ends)
        self.store = Store(settings.redis_url, settings.data_dir, settings.redis_max_connections)
        self._owns_lm = lm is None
        self.lm: LMClient = InstrumentedLM(  # counts LM calls, tokens, latency; knows loaded
            lm if lm is not None else _build_lm(settings, self.store),
            assume_started=lm is not None)
        self.registry = CommandRegistry()
        self.outbox = Outbox()
        self.tenancy = Tenancy(self.store, settings.merchant, settings.admin_ids)
        self.core = Core(settings, self.store, self.lm, self.tenancy, self.registry, self.outbox)
        self.features = build_features(self.core)
        for feature in self.features:
            self.registry.register_all(feature.commands())
        conversation: object | None = next(
            (f for f in self.features if hasattr(f, "answer")), None
        )
        commerce = next((f for f in self.features if isinstance(f, CommerceFeature)), None)
        handler = _as_conversation(conversation)
        if commerce is not None and handler is not None:  # order questions first
            conversation = OrdersFirst(commerce, handler)
        observers = [f for f in self.features if hasattr(f, "observe")]
        self.router = Router(
            self.registry, self.tenancy,
            conversation=_as_conversation(conversation),
            observers=[_as_observer(o) for o in observers],
            max_message_chars=settings.max_message_chars,
        )
        self._started: list[str] = []

    async def start(self) -> None:
        await self.store.start()
        self._started.append("store")
        await self.store.register_merchant(self.settings.merchant)
        if self._owns_lm:
            await self.lm.start()
            self._started.append("lm")
        for feature in self.features:
            await feature.start()
        self._started.append("features")
        await load_demo_if_empty(self.core, self.features)
        for adapter in self.adapters:
            self.outbox.attach(adapter)
            await adapter.start(self)
        self._started.append("adapters")
        self._started.append("front_ends")  # stop() tolerates one that never started
        for front_end in self.front_ends:
            await front_end.start(self)
        log.info("Shopkeep started with %d adapter(s)", len(self.adapters))

    async def stop(self) -> None:
        """Stop taking messages first, then let work in flight finish, then close storage."""
        if "front_ends" in self._started:
            for front_end in reversed(self.front_ends):
                try:
                    await front_end.stop()
                except Exception:
                    log.exception("front end %s did not stop cleanly", type(front_end).__name__)
        if "adapters" in self._started:
            for adapter in reversed(self.adapters):
                try:
                    await adapter.stop()
                except Exception:
                    log.exception("adapter %s did not stop cleanly", adapter.platform)
            self.outbox.detach_all()
        await self.router.drain()
        if "features" in self._started:
            for feature in reversed(self.features):
                try:
                    await feature.stop()
                except Exception:
                    log.exception("feature %s did not stop cleanly", type(feature).__name__)
        if "lm" in self._started:
            await self.lm.stop()
        if "store" in self._started:
            await self.store.stop()
        self._started.clear()

    async def settle(self, within_s: float = 30.0) -> bool:
        """Wait until the messages in flight are answered and what they taught (interest
        profiles) is stored: one-shot commands (`shopkeep ask`) call it before stopping.
        False when that took longer than `within_s` (the model failing): what is left stays
        queued in Redis for the next start, not lost."""
        await self.router.drain()
        for feature in self.features:
            if isinstance(feature, ProfilesFeature):
                try:
                    await feature.flush(within_s)
                except TimeoutError:
                    log.warning("profiles: not all messages learned within %.0f s; the rest "
                                "is kept for the next start", within_s)
                    return False
        return True

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        """One message through the whole pipeline (what adapters call)."""
        return await self.router.handle(inbound)

    async def membership(self, change: MembershipChange) -> None:
        """A join or leave from an adapter, handed to every feature that follows them."""
        merchant = await self.tenancy.merchant_serving(change.community, change.merchant)
        if merchant is None:
            return  # a community no merchant approved: nothing is recorded
        for feature in self.features:
            follower = getattr(feature, "member_changed", None)
            if follower is None:
                continue
            try:
                await follower(change, merchant)
            except Exception:
                log.exception("%s could not record %s %s", type(feature).__name__,
                              change.member.key, "joining" if change.joined else "leaving")

    async def community_moved(self, old: CommunityRef, new: CommunityRef) -> None:
        """A community got a new id on its platform (what adapters call)."""
        await self.tenancy.community_moved(old, new)

    def feature(self, kind: type[F]) -> F:
        """The app's feature of this class (front ends call the features, not commands)."""
        for feature in self.features:
            if isinstance(feature, kind):
                return feature
        raise LookupError(f"no {kind.__name__} in this app")

    @property
    def commands(self) -> list[CommandSpec]:
        return self.registry.all()

    @property
    def redis(self) -> aioredis.Redis:
        return self.store.redis


def _as_conversation(feature: object | None) -> ConversationHandler | None:
    return feature  # type: ignore[return-value]


def _as_observer(feature: object) -> MessageObserver:
    return feature  # type: ignore[return-value]


def _build_lm(settings: Settings, store: Store) -> LMClient:
    if settings.lm_backend == "remote":
        return _RemoteOnStore(settings, store)
    from lm_service.client import create_lm_client

    return create_lm_client(settings)


class _RemoteOnStore:
    """The remote backend, built at start on the store's own Redis connection: the bot and
    the lm-workers must share one server, and an embedded store has its URL only once it
    has started."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._inner: LMClient | None = None

    @property
    def inner(self) -> LMClient:
        if self._inner is None:
            raise RuntimeError("the LM client has not been started")
        return self._inner

    async def start(self) -> None:
        from lm_service.client import create_lm_client

        self._inner = create_lm_client(self.settings, redis=self.store.redis)
        await self._inner.start()

    async def stop(self) -> None:
        if self._inner is not None:
            await self._inner.stop()

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        return await self.inner.generate(request)

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        return self.inner.stream(request)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self.inner.embed(texts)
