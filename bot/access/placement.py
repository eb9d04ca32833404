"""Where a deployment that another Temporal client started may be shown: a server of its
bot that shipcord is in, and a channel of that server."""

from __future__ import annotations

import discord

from bot.access.installation_access import Access
from workflows.deployment_service import Placement, PlacementRule
from workflows.models import DeploymentInput


def placement_rule(client: discord.Client, access: Access) -> PlacementRule:
    async def place(request: DeploymentInput) -> Placement:
        target = access.target_of(request.bot_name)
        servers = access.policy.bot_servers(target) if target else access.policy.guild_ids
        guild_id = request.guild_id
        if guild_id is None or guild_id not in servers or client.get_guild(int(guild_id)) is None:
            return Placement(None, None)
        channel_id = request.channel_id
        channel = client.get_channel(int(channel_id)) if channel_id else None
        in_server = getattr(getattr(channel, "guild", None), "id", None) == int(guild_id)
        return Placement(guild_id, channel_id if in_server else None)

    return place
