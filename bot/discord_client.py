"""ShipcordBot: the Discord client, wired to Temporal and SQLite by its constructor."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import structlog
from discord import app_commands
from discord.ext import commands

from bot.access.forbidden_channels import ForbiddenChannels
from bot.access.installation_access import Access
from bot.access.placement import placement_rule
from bot.access.policy import AccessPolicy, Actor
from bot.board.control_buttons import DeploymentButton
from bot.board.message_writer import ProgressMessages
from bot.board.progress_board import ProgressBoard
from bot.deployments.controls import Controller
from bot.discord_api import configure_api_base, discover_gateway
from bot.frontend_config import FrontEndConfig
from bot.frontend_meter import FrontEndMeter, NoMeter
from bot.interactions.interaction_replies import InteractionReplies
from bot.interactions.token_redaction import hide_interaction_tokens
from bot.interactions.user_answers import UserError, reply_quietly, report_unexpected
from bot.notices.failure_notices import FailureNotifier
from bot.notices.incident_notices import IncidentNotifier
from bot.pacing import Pacer
from storage import Storage
from workflows.deployment_service import DeploymentService
from workflows.release_logs import ReleaseLogs
from workflows.release_reading import HostReleases, ReleasesUnreadable
from workflows.targets import TargetRegistry

log = structlog.get_logger(__name__)

# How often Temporal's visibility is asked for deployments that other clients started.
ADOPTION_INTERVAL_SECONDS = 5.0
COGS = ("bot.deployments.deployments_cog", "bot.history.history_cog", "bot.releases.releases_cog")


class ShipcordTree(app_commands.CommandTree["ShipcordBot"]):
    """Reads who asks once per command, for its checks and its log lines, and answers
    every failure: user errors as they are, the rest with a ref."""

    async def interaction_check(self, interaction: discord.Interaction[ShipcordBot], /) -> bool:
        actor = Actor.of(interaction)
        structlog.contextvars.bind_contextvars(
            guild_id=actor.guild_id,
            user_id=actor.user_id,
            command=interaction.command.qualified_name if interaction.command else None,
        )
        return True

    async def on_error(
        self, interaction: discord.Interaction[ShipcordBot], error: app_commands.AppCommandError
    ) -> None:
        cause: BaseException = (
            error.original if isinstance(error, app_commands.CommandInvokeError) else error
        )
        if isinstance(cause, app_commands.TransformerError) and isinstance(
            cause.__cause__, UserError
        ):
            cause = cause.__cause__  # an option the person typed was refused
        if isinstance(cause, UserError | ReleasesUnreadable):
            await reply_quietly(interaction, str(cause))
        elif isinstance(cause, app_commands.NoPrivateMessage):
            await reply_quietly(interaction, "Deployments are managed from a server channel.")
        elif isinstance(cause, app_commands.CheckFailure):
            await reply_quietly(interaction, "You are not allowed to use this command here.")
        else:
            with structlog.contextvars.bound_contextvars(
                guild_id=str(interaction.guild_id) if interaction.guild_id else None,
                user_id=str(interaction.user.id),
                command=interaction.command.qualified_name if interaction.command else None,
            ):
                await report_unexpected(interaction, cause)


# shipcord never joins voice channels: discord.py's warnings about voice libraries are noise.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


class ShipcordBot(commands.Bot):
    def __init__(
        self,
        *,
        config: FrontEndConfig,
        service: DeploymentService,
        storage: Storage,
        meter: FrontEndMeter | None = None,
        edit_limit: int = 5,
        edit_window: float = 5.0,
        interaction_limit: int = 5,
        interaction_window: float = 2.0,
        interaction_replies: InteractionReplies | None = None,
        query_concurrency: int = 32,
        run_board: bool = True,
        releases: HostReleases | None = None,
        **options: Any,
    ) -> None:
        hide_interaction_tokens()
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
        self.config = config
        self.meter: FrontEndMeter = meter or NoMeter()
        self._run_board = run_board
        self.service = service
        self.storage = storage
        self.targets = TargetRegistry(config.targets_file)
        guild_ids = set(config.guild_ids)
        if config.dev_guild_id is not None:
            guild_ids.add(str(config.dev_guild_id))
        self.access = Access(
            AccessPolicy(guild_ids=guild_ids, admin_role=config.admin_role), self.targets
        )
        # A channel's bucket for its messages, and each interaction's for its webhook.
        channel_pacer = Pacer(limit=edit_limit, window=edit_window)
        forbidden = ForbiddenChannels()
        self.board = ProgressBoard(
            client=self,
            storage=storage,
            service=service,
            config=config,
            messages=ProgressMessages(
                client=self,
                storage=storage,
                channel_pacer=channel_pacer,
                interaction_pacer=Pacer(limit=interaction_limit, window=interaction_window),
                replies=InteractionReplies()
                if interaction_replies is None
                else interaction_replies,
                forbidden=forbidden,
                meter=self.meter,
            ),
            notifier=FailureNotifier(
                client=self,
                storage=storage,
                pacer=channel_pacer,
                config=config,
                forbidden=forbidden,
            ),
            meter=self.meter,
            query_concurrency=query_concurrency,
        )
        self._placement = placement_rule(self, self.access)
        self._adopting: asyncio.Task[None] | None = None
        self.incidents = IncidentNotifier(
            client=self,
            storage=storage,
            pacer=self.board.messages.channel_pacer,
            forbidden=self.board.forbidden_channels,
            interval=config.progress_interval,
        )
        # One reader of releases and their logs for the whole front end, closed with it
        # (by default, of this process's own database only).
        self.releases = releases or HostReleases(
            storage, ReleaseLogs(storage), local_host=None, default_host=""
        )
        self.controller = Controller(
            storage=storage,
            deployments=service.deployments,
            access=self.access,
            on_change=self.board.wake,
        )

    # -- start-up ---------------------------------------------------------------------------

    async def login(self, token: str) -> None:
        configure_api_base(self.config.api_base)
        await super().login(token)
        await discover_gateway(self.http)

    async def setup_hook(self) -> None:
        for cog in COGS:
            await self.load_extension(cog)
        self.add_dynamic_items(DeploymentButton)
        await self.sync_servers()
        if self._run_board:
            self.board.start()
            self.incidents.start()
            self._adopting = asyncio.create_task(self._adopt_forever(), name="shipcord-adopt")

    async def _adopt_forever(self) -> None:
        """Deployments that other Temporal clients start get a row, and so a message."""
        await self.wait_until_ready()
        while True:
            try:
                if await self.service.adopt_started_elsewhere(self._placement):
                    self.board.wake()
            except Exception:  # one bad round must not end adoption
                log.exception("deployment_discovery_failed")
            await asyncio.sleep(ADOPTION_INTERVAL_SECONDS)

    async def sync_servers(self) -> None:
        """Register the commands in each configured server (SHIPCORD_GUILD_IDS, the
        development server and the targets' `guilds`), where they appear at once: no
        separate step before the first command. Global commands stay an explicit action
        (`shipcord sync-commands`)."""
        for guild_id in sorted(self.access.policy.enabled_servers(self.access.targets())):
            await self.sync_guild(int(guild_id))

    async def sync_guild(self, guild_id: int) -> list[app_commands.AppCommand]:
        """Register the commands in one server, where they are available at once."""
        guild = discord.Object(guild_id)
        self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as error:
            log.error("command_sync_failed", guild_id=guild_id, status=error.status)
            return []
        log.info("commands_synced", guild_id=guild_id, commands=sorted(c.name for c in synced))
        return synced

    async def sync_global(self) -> list[app_commands.AppCommand]:
        """Register the commands in every server (an explicit admin action)."""
        synced = await self.tree.sync()
        log.info("commands_synced_globally", commands=sorted(c.name for c in synced))
        return synced

    async def close(self) -> None:
        if self._adopting is not None:
            self._adopting.cancel()
            await asyncio.gather(self._adopting, return_exceptions=True)
        await self.incidents.stop()
        await self.board.stop()
        await self.releases.close()
        await super().close()

    async def on_ready(self) -> None:
        log.info("discord_ready", user=str(self.user), guilds=len(self.guilds))
        for guild in self.guilds:
            await self._refuse_unconfigured(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._refuse_unconfigured(guild)

    async def _refuse_unconfigured(self, guild: discord.Guild) -> None:
        """A server that is not configured gets nothing: it is logged, and left if asked."""
        enabled = self.access.policy.enabled_servers(self.access.targets())
        if str(guild.id) in enabled:
            return
        leave = self.config.leave_unconfigured_guilds
        log.warning("unconfigured_guild", guild_id=str(guild.id), leaving=leave)
        if leave:
            try:
                await guild.leave()
            except discord.HTTPException as error:
                log.warning("leave_guild_failed", guild_id=str(guild.id), status=error.status)
