"""Where discord.py connects: the one place that points its REST base and gateway elsewhere.

discord.py keeps both addresses as class attributes: `discord.http.Route.BASE` (every REST
call, interaction callbacks and webhook follow-ups included, is built from it; the library's
own `_set_api_version` writes it the same way) and `DiscordWebSocket.DEFAULT_GATEWAY` (the
first connection of a plain `Client`, and the fallback after an invalidated session; a
sharded client asks `GET /gateway/bot`, which the REST base already answers). Both are
process-wide, so one process talks to one Discord — which is how Shopkeep runs.
"""

from __future__ import annotations

import discord.gateway
import discord.http
import yarl

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"


def configure_endpoints(api_url: str = DEFAULT_API_URL,
                        gateway_url: str = DEFAULT_GATEWAY_URL) -> None:
    """Point discord.py's REST calls at `api_url` and its gateway at `gateway_url`.

    Raises:
        ValueError: a URL without the scheme discord.py needs (http(s) / ws(s)).
    """
    api = api_url.rstrip("/")
    if not api.startswith(("http://", "https://")):
        raise ValueError(f"discord_api_url must start with http:// or https://, not {api_url!r}")
    if not gateway_url.startswith(("ws://", "wss://")):
        raise ValueError(f"discord_gateway_url must start with ws:// or wss://, "
                         f"not {gateway_url!r}")
    discord.http.Route.BASE = api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def current_endpoints() -> tuple[str, str]:
    """The REST base and gateway discord.py uses now (for logs and tests)."""
    return discord.http.Route.BASE, str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
