"""Discord: the discord.py adapter, its slash commands and where it connects."""

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.endpoints import configure_endpoints

__all__ = ["DiscordAdapter", "configure_endpoints"]
