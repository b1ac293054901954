"""Shopkeep test suite."""
