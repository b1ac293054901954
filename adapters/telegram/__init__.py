"""Telegram: python-telegram-bot translation and sending; flood control and offsets in Redis."""

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.flood import FloodLimits

__all__ = ["FloodLimits", "TelegramAdapter"]
