"""What the cogs of shipcord's slash commands have in common."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from discord import app_commands
from discord.ext import commands

from bot.discord_client import ShipcordBot


class ShipcordCog(commands.Cog):
    def __init__(self, bot: ShipcordBot) -> None:
        self.bot = bot


def server_command(
    name: str, *, for_managers: bool = False, options: Mapping[str, str] | None = None
) -> Callable[[Any], Any]:
    """A slash command used in a server, never in a DM, its `options` described as given.
    `for_managers`: offered by default only to people who may manage the server (its
    admins can offer it to others)."""

    def make(callback: Any) -> Any:
        if options:
            callback = app_commands.describe(**options)(callback)
        if for_managers:
            callback = app_commands.default_permissions(manage_guild=True)(callback)
        return app_commands.command(name=name)(app_commands.guild_only()(callback))

    return make
