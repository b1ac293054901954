"""Redis as the system of record: the connection, the embedded server and the key builders."""

from bot.storage.keys import Keys
from bot.storage.store import Store

__all__ = ["Keys", "Store"]
