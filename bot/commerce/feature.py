"""The store feature: the configured connector, the order desk that answers order questions
before the FAQ does, the catalog sync schedule and /catalog sync."""

from __future__ import annotations

import logging
import ssl

from bot.commands.registry import CommandContext, CommandSpec
from bot.commerce.connector import StoreConnector
from bot.commerce.http import RetryPolicy
from bot.commerce.orders import OrderDesk, OrderRules
from bot.commerce.sync import CatalogSync
from bot.core import Core
from bot.errors import ConfigError
from bot.events import Inbound, Outbound, Privilege
from bot.knowledge.store import KnowledgeStore
from bot.router import ConversationHandler
from bot.settings import Settings

log = logging.getLogger(__name__)


def build_connector(settings: Settings) -> StoreConnector | None:
    """The connector the settings describe, or None when no store is configured.

    Raises:
        ConfigError: a store kind without its URL or credentials, or a plain-http URL.
    """
    if settings.store_kind == "none":
        return None
    if not settings.store_url:
        raise ConfigError(f"SHOPKEEP_STORE_KIND={settings.store_kind} needs "
                          "SHOPKEEP_STORE_URL (the shop's https address).")
    context = None
    if settings.store_ca_file is not None:
        context = ssl.create_default_context(cafile=str(settings.store_ca_file))
    policy = RetryPolicy(timeout_s=settings.store_timeout_s)
    if settings.store_kind == "woocommerce":
        from bot.commerce.woocommerce import WooCommerceConnector

        if settings.store_key is None or settings.store_secret is None:
            raise ConfigError("WooCommerce needs SHOPKEEP_STORE_KEY and SHOPKEEP_STORE_SECRET "
                              "(a REST API key with Read access) in the environment.")
        return WooCommerceConnector(settings.store_url, settings.store_key.get_secret_value(),
                                    settings.store_secret.get_secret_value(), policy=policy,
                                    ssl_context=context)
    from bot.commerce.shopify import ShopifyConnector

    if settings.store_token is None:
        raise ConfigError("Shopify needs SHOPKEEP_STORE_TOKEN (a custom app's Admin API "
                          "access token with read_orders and read_products) in the "
                          "environment.")
    return ShopifyConnector(settings.store_url, settings.store_token.get_secret_value(),
                            api_version=settings.store_api_version, policy=policy,
                            ssl_context=context)


class CommerceFeature:
    """Serves the merchant the settings name (`settings.merchant`); other merchants keep
    their CSV catalog and FAQ answers."""

    def __init__(self, core: Core, connector: StoreConnector | None = None) -> None:
        self.core = core
        settings = core.settings
        self.connector = connector if connector is not None else build_connector(settings)
        self.merchant = settings.merchant
        self.orders = OrderDesk(core.store, self.connector_for, OrderRules(
            settings.order_lookups_per_hour, settings.order_failures_per_hour,
            settings.order_conversation_ttl_s))
        self.sync: CatalogSync | None = None
        if self.connector is not None:
            self.sync = CatalogSync(core.store, KnowledgeStore(core.store, core.lm),
                                    self.connector, self.merchant,
                                    settings.store_sync_interval_s)

    def connector_for(self, merchant: str) -> StoreConnector | None:
        return self.connector if merchant == self.merchant else None

    def commands(self) -> list[CommandSpec]:
        return [CommandSpec("catalog sync", "Sync the catalog from the connected store now.",
                            self._sync_command, privilege=Privilege.MODERATOR, slow=True)]

    async def start(self) -> None:
        if self.connector is not None:
            await self.connector.start()
        if self.sync is not None:
            await self.sync.start()

    async def stop(self) -> None:
        if self.sync is not None:
            await self.sync.stop()
        if self.connector is not None:
            await self.connector.stop()

    async def claim(self, inbound: Inbound, merchant: str) -> list[Outbound] | None:
        """Order messages get the order desk's replies; anything else None."""
        return await self.orders.claim(inbound, merchant)

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        await self.orders.forget_member(merchant, member_key, pseudonym)

    async def _sync_command(self, ctx: CommandContext) -> str:
        if self.sync is None or ctx.merchant != self.merchant:
            return ("No store is connected, so the catalog comes from /catalog import. "
                    "Set SHOPKEEP_STORE_KIND and its keys to sync from WooCommerce or Shopify.")
        result = await self.sync.run()
        return result.summary(self.sync.connector.kind)


class OrdersFirst:
    """The conversation handler the router calls: the order desk may claim a message;
    everything else goes on to the reply pipeline (FAQ and catalog answers)."""

    def __init__(self, commerce: CommerceFeature, replies: ConversationHandler) -> None:
        self.commerce = commerce
        self.replies = replies

    async def answer(self, inbound: Inbound, merchant: str) -> list[Outbound]:
        claimed = await self.commerce.claim(inbound, merchant)
        if claimed is not None:
            return claimed
        return await self.replies.answer(inbound, merchant)
