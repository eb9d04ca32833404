"""Where a deployment that another Temporal client started may be shown: a server of its
bot that shipcord is in, and a channel of that server."""

from __future__ import annotations

import discord

from bot.access.installation_access import Access
from workflows.deployment_service import Placement, PlacementRule
from workflows.models import DeploymentInput, unit_name


def placement_rule(client: discord.Client, access: Access) -> PlacementRule:
    async def place(request: DeploymentInput) -> Placement:
        target = access.target_of(unit_name(request.bot_name, request.environment))
        servers = access.policy.bot_servers(target) if target else access.policy.guild_ids
        guild_id = request.guild_id
        if guild_id is None or guild_id not in servers or client.get_guild(int(guild_id)) is None:
            return Placement(None, None)
        channel_id = request.channel_id
        in_server = channel_id is not None and await channel_guild_id(client, channel_id) == int(
            guild_id
        )
        return Placement(guild_id, channel_id if in_server else None)

    return place


async def channel_guild_id(client: discord.Client, channel_id: str) -> int | None:
    """The server of a channel shipcord can see (its cache first, else Discord's answer)."""
    channel: object = client.get_channel(int(channel_id))
    if channel is None:
        try:
            channel = await client.fetch_channel(int(channel_id))
        except (discord.HTTPException, discord.InvalidData):
            return None
    guild = getattr(channel, "guild", None)
    return guild.id if isinstance(guild, discord.Guild) else None
