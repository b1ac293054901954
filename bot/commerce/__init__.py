"""Store connectors (WooCommerce, Shopify): order status with verification, a live catalog."""

from bot.commerce.connector import (
    Order,
    OrderLine,
    Shipment,
    StoreAuthError,
    StoreConnector,
    StoreError,
    StoreUnavailable,
)

__all__ = ["Order", "OrderLine", "Shipment", "StoreAuthError", "StoreConnector", "StoreError",
           "StoreUnavailable"]
