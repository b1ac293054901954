"""Helpers shared by the tests: a real Redis server, stand-in servers, a conversation driver."""
