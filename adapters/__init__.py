"""Platform adapters: each translates one platform's events to `bot.events` and back."""

from __future__ import annotations

from bot.ports import Adapter
from bot.settings import Settings


def build_adapters(settings: Settings) -> list[Adapter]:
    """One adapter per platform whose token is set. Platform SDKs are imported only here,
    and only for the platforms in use."""
    adapters: list[Adapter] = []
    if settings.discord_token is not None:
        from adapters.discord import DiscordAdapter

        adapters.append(DiscordAdapter.from_settings(settings))
    if settings.telegram_token is not None:
        from adapters.telegram import TelegramAdapter

        adapters.append(TelegramAdapter.from_settings(settings))
    return adapters
