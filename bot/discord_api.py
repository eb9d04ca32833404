"""Point discord.py at the configured Discord API base (discord.com or a compatible server)."""

from __future__ import annotations

import discord
import structlog
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route

log = structlog.get_logger(__name__)

DEFAULT_API_BASE = "https://discord.com/api/v10"


def configure_api_base(api_base: str) -> None:
    """Send every REST request of this process to `api_base` (no trailing slash)."""
    Route.BASE = api_base.rstrip("/")


def gateway_url(url: str) -> yarl.URL:
    """discord.py appends its query to the gateway URL and needs the trailing slash."""
    parsed = yarl.URL(url)
    if not parsed.path.endswith("/"):
        parsed = parsed.with_path(parsed.path + "/")
    return parsed.with_query(None)


async def discover_gateway(http: HTTPClient) -> yarl.URL:
    """Ask `GET {base}/gateway/bot` where the gateway is and make discord.py connect there."""
    try:
        _shards, url, _limits = await http.get_bot_gateway()
    except discord.GatewayNotFound:
        log.warning("gateway_discovery_failed", fallback=str(DiscordWebSocket.DEFAULT_GATEWAY))
        raise
    discovered = gateway_url(url)
    DiscordWebSocket.DEFAULT_GATEWAY = discovered
    log.info("gateway_discovered", gateway=str(discovered), api_base=Route.BASE)
    return discovered
