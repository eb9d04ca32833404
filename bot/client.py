"""ShipcordBot: the Discord client, wired to Temporal and SQLite by its constructor.

Run it like any discord.py bot::

    bot = ShipcordBot(settings=settings, deployments=DeploymentClient(client, queue),
                      storage=storage)
    async with bot:
        await bot.start(settings.discord_token.get_secret_value())

Commands are synced to `settings.discord_dev_guild_id` at start-up when it is set; a
global sync (which Discord propagates slowly and rate-limits) happens only through
`sync_global()`, an explicit admin action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord
import structlog
from discord import app_commands
from discord.ext import commands

from bot.actions import UserError, reply, report_unexpected
from bot.discord_api import configure_api_base, discover_gateway
from bot.pacing import ChannelPacer
from bot.progress import ProgressBoard
from bot.views import DeploymentButton
from shipcord import metrics
from shipcord.settings import Settings
from storage import Storage
from workflows.client import DeploymentClient
from workflows.targets import TargetRegistry

log = structlog.get_logger(__name__)

COGS = ("bot.cogs.deployments",)


class ShipcordTree(app_commands.CommandTree["ShipcordBot"]):
    """Answers every failure of a command: user errors as they are, the rest with a ref."""

    async def on_error(
        self, interaction: discord.Interaction[ShipcordBot], error: app_commands.AppCommandError
    ) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, UserError):
            await _reply_quietly(interaction, str(cause))
        elif isinstance(cause, app_commands.NoPrivateMessage):
            await _reply_quietly(interaction, "Deployments are managed from a server channel.")
        elif isinstance(cause, app_commands.CheckFailure):
            await _reply_quietly(interaction, "You are not allowed to use this command here.")
        else:
            with structlog.contextvars.bound_contextvars(
                guild_id=str(interaction.guild_id) if interaction.guild_id else None,
                user_id=str(interaction.user.id),
                command=interaction.command.qualified_name if interaction.command else None,
            ):
                await report_unexpected(interaction, cause)


async def _reply_quietly(interaction: discord.Interaction[Any], text: str) -> None:
    try:
        await reply(interaction, text)
    except discord.HTTPException as failure:
        log.warning("reply_failed", status=failure.status)


# shipcord never joins voice channels: discord.py's warnings about voice libraries are noise.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


class ShipcordBot(commands.Bot):
    def __init__(
        self,
        *,
        settings: Settings,
        deployments: DeploymentClient,
        storage: Storage,
        targets_file: Path | None = None,
        progress_interval: float | None = None,
        edit_limit: int = 5,
        edit_window: float = 5.0,
        query_concurrency: int = 8,
        run_board: bool = True,
        **options: Any,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels and roles; members come with each interaction
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=ShipcordTree,
            help_command=None,
            **options,
        )
        self.settings = settings
        self._run_board = run_board
        metrics.count_discord_rate_limits()
        self.deployments = deployments
        self.storage = storage
        self.targets = TargetRegistry(targets_file or settings.targets_file)
        self.board = ProgressBoard(
            self,
            interval=progress_interval
            if progress_interval is not None
            else settings.progress_interval,
            pacer=ChannelPacer(limit=edit_limit, window=edit_window),
            query_concurrency=query_concurrency,
        )

    # -- start-up ---------------------------------------------------------------------------

    async def login(self, token: str) -> None:
        configure_api_base(self.settings.discord_api_base)
        await super().login(token)
        await discover_gateway(self.http)

    async def setup_hook(self) -> None:
        for cog in COGS:
            await self.load_extension(cog)
        self.add_dynamic_items(DeploymentButton)
        if self.settings.discord_dev_guild_id:
            await self.sync_dev_guild(self.settings.discord_dev_guild_id)
        if self._run_board:
            self.board.start()

    async def sync_dev_guild(self, guild_id: int) -> list[app_commands.AppCommand]:
        """Register the commands in one server, where they are available at once."""
        guild = discord.Object(guild_id)
        self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as error:
            log.error("command_sync_failed", guild_id=guild_id, status=error.status)
            return []
        log.info("commands_synced", guild_id=guild_id, count=len(synced))
        return synced

    async def sync_global(self) -> list[app_commands.AppCommand]:
        """Register the commands in every server (an explicit admin action)."""
        synced = await self.tree.sync()
        log.info("commands_synced_globally", count=len(synced))
        return synced

    async def close(self) -> None:
        await self.board.stop()
        await super().close()

    # -- used by the commands ----------------------------------------------------------------

    async def release_unstarted(self, workflow_id: str, error: BaseException) -> None:
        """Unlock the bot after a workflow start failed; nobody is notified about it."""
        await self.storage.close_deployment(
            workflow_id, state="failed", error=f"The workflow could not be started: {error}"
        )
        await self.storage.claim_notification(workflow_id)
        await self.storage.mark_message_final(workflow_id)

    async def on_ready(self) -> None:
        log.info("discord_ready", user=str(self.user), guilds=len(self.guilds))
