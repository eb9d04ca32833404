"""What the cogs of shipcord's slash commands have in common."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from discord import app_commands
from discord.ext import commands

from bot.discord_client import ShipcordBot


class ShipcordCog(commands.Cog):
    def __init__(self, bot: ShipcordBot) -> None:
        self.bot = bot


def server_command(name: str, *, for_managers: bool = False) -> Callable[[Any], Any]:
    """A slash command used in a server, never in a DM. `for_managers`: offered by default
    only to people who may manage the server (its admins can offer it to others)."""

    def make(callback: Any) -> Any:
        if for_managers:
            callback = app_commands.default_permissions(manage_guild=True)(callback)
        return app_commands.command(name=name)(app_commands.guild_only()(callback))

    return make
