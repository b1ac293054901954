"""The Shopkeep core: routing, commands, replies, knowledge, profiles, campaigns, storage."""

__version__ = "0.1.0"
