"""/history: a bot's deployments, newest first, with pages (buttons that keep working after
a restart: they carry the bot and the page, and the permission check is made again)."""

from __future__ import annotations

from typing import Any

import discord
import structlog
from discord import app_commands
from discord.ext import commands

from bot.access.policy import Actor
from bot.command_options import ENVIRONMENT_OPTION, BotOfThisServer, EnvironmentOfThisServer
from bot.discord_client import ShipcordBot
from bot.history.history_lines import PAGE_SIZE, render_history
from bot.interactions.user_answers import NO_MENTIONS, UserError, reply
from bot.shipcord_cog import ShipcordCog, server_command
from storage import DeploymentRecord
from workflows.release_reading import ReleasesUnreadable
from workflows.targets import Target

log = structlog.get_logger(__name__)

HISTORY_OPTIONS = {"bot": "The bot whose deployments to list", "environment": ENVIRONMENT_OPTION}

HISTORY_ROWS = 500


async def visible_history(bot: ShipcordBot, actor: Actor, bot_name: str) -> list[DeploymentRecord]:
    bot.access.require_enabled(actor)
    target = bot.access.target_of(bot_name)
    if target is None or not bot.access.policy.belongs_here(actor, target):
        raise UserError(f"There is no bot {bot_name[:40]!r} in this server.")
    records = await bot.storage.list_deployments_of_bot(bot_name, limit=HISTORY_ROWS)
    return [record for record in records if bot.access.may_see(actor, record)]


def page_view(bot_name: str, page: int, total: int) -> discord.ui.View | None:
    pages = -(-total // PAGE_SIZE)
    if pages <= 1:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(HistoryPage(bot_name, page - 1, "◀ Newer", disabled=page == 0))
    view.add_item(HistoryPage(bot_name, page + 1, "Older ▶", disabled=page >= pages - 1))
    return view


async def render_page(
    bot: ShipcordBot, actor: Actor, bot_name: str, page: int
) -> tuple[str, discord.ui.View | None]:
    records = await visible_history(bot, actor, bot_name)
    pages = max(1, -(-len(records) // PAGE_SIZE))
    page = max(0, min(page, pages - 1))
    shown = records[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    target = bot.access.target_of(bot_name)
    try:
        releases = await bot.releases.list(target) if target is not None else []
    except ReleasesUnreadable:
        releases = []  # the deployments still show, without their release numbers
    text = render_history(
        bot_name,
        shown,
        page=page,
        total=len(records),
        workflow_url=bot.config.workflow_url,
        release_numbers={release.workflow_id: release.number for release in releases},
    )
    return text, page_view(bot_name, page, len(records))


class HistoryPage(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"shipcord:history:(?P<bot>[a-z0-9-]{1,32}(?:\.[a-z0-9-]{1,20})?):(?P<page>\d{1,4})",
):
    def __init__(self, bot_name: str, page: int, label: str = "Page", disabled: bool = False):
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"shipcord:history:{bot_name}:{max(0, page)}",
                disabled=disabled,
            )
        )
        self.bot_name = bot_name
        self.page = max(0, page)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> HistoryPage:
        return cls(match["bot"], int(match["page"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client = interaction.client
        if not isinstance(client, ShipcordBot):
            raise TypeError("history pages belong to a ShipcordBot")
        actor = Actor.of(interaction)
        try:
            text, view = await render_page(client, actor, self.bot_name, self.page)
        except UserError as refusal:
            await interaction.response.send_message(str(refusal), ephemeral=True)
            return
        if view is None:
            await interaction.response.edit_message(content=text, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.edit_message(
                content=text, view=view, allowed_mentions=NO_MENTIONS
            )


class HistoryCog(ShipcordCog, name="History"):
    @server_command("history", options=HISTORY_OPTIONS)
    async def history(
        self,
        interaction: discord.Interaction,
        bot: app_commands.Transform[Target, BotOfThisServer],
        environment: app_commands.Transform[str, EnvironmentOfThisServer] | None = None,
    ) -> None:
        """A bot's deployments, newest first: who, when, how long, how it ended."""
        actor = Actor.of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        text, view = await render_page(self.bot, actor, bot.name, 0)
        if view is None:
            await reply(interaction, text)
        else:
            await interaction.followup.send(
                text, view=view, ephemeral=True, allowed_mentions=NO_MENTIONS
            )


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, ShipcordBot)
    bot.add_dynamic_items(HistoryPage)
    await bot.add_cog(HistoryCog(bot))
