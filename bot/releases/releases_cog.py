"""/rollback and /logs: a bot's earlier releases, put back or read."""

from __future__ import annotations

import discord
import structlog
from discord import app_commands
from discord.ext import commands

from bot.access.policy import Actor
from bot.autocomplete import release_choices
from bot.command_options import (
    ENVIRONMENT_OPTION,
    BotOfThisServer,
    DeployableBot,
    DeployableEnvironment,
    EnvironmentOfThisServer,
    environment_asked,
)
from bot.deployments.deploy_launch import deployment_request, launch
from bot.discord_client import ShipcordBot
from bot.interactions.user_answers import UserError
from bot.releases.log_delivery import send_release_log
from bot.releases.release_rules import choose_rollback, require_release_number
from bot.releases.show_log_button import ShowLogButton
from bot.shipcord_cog import ShipcordCog, server_command
from storage import ReleaseRecord
from workflows.models import RELEASE_NUMBER_MAX
from workflows.release_reading import ReleasesUnreadable
from workflows.targets import Target

log = structlog.get_logger(__name__)

ROLLBACK_OPTIONS = {
    "bot": "The bot to roll back, as named in the targets file",
    "release": "The release to put back (default: the last good one before the current)",
    "environment": ENVIRONMENT_OPTION,
}
LOGS_OPTIONS = {
    "bot": "The bot whose release output to read",
    "release": "The release (default: the newest)",
    "environment": ENVIRONMENT_OPTION,
}


class ReleasesCog(ShipcordCog, name="Releases"):
    # -- /rollback ----------------------------------------------------------------------------

    @server_command("rollback", for_managers=True, options=ROLLBACK_OPTIONS)
    async def rollback(
        self,
        interaction: discord.Interaction,
        bot: app_commands.Transform[Target, DeployableBot],
        release: app_commands.Range[int, 1, RELEASE_NUMBER_MAX] | None = None,
        environment: app_commands.Transform[str, DeployableEnvironment] | None = None,
    ) -> None:
        """Put an earlier release of a bot back; the answer is its progress."""
        actor = Actor.of(interaction)
        structlog.contextvars.bind_contextvars(bot_name=bot.name)
        releases = await self.bot.releases.list(bot)
        chosen = choose_rollback(bot.name, releases, release)
        request = deployment_request(
            interaction, actor, bot, chosen.version, restore_release=chosen.number
        )
        await launch(self.bot, interaction, actor, request)

    @rollback.autocomplete("release")
    async def rollback_releases(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        """The releases of the bot being rolled back, for people who may deploy it."""
        actor, target = self._typed_target(interaction)
        if target is None or not self.bot.access.policy.may_deploy(actor, target):
            return []
        releases = await self._releases_offered(target)
        shown = [r for r in releases if r.status != "active" and not r.in_flight]
        return release_choices(shown, current)

    # -- /logs --------------------------------------------------------------------------------

    @server_command("logs", for_managers=True, options=LOGS_OPTIONS)
    async def logs(
        self,
        interaction: discord.Interaction,
        bot: app_commands.Transform[Target, BotOfThisServer],
        release: app_commands.Range[int, 1, RELEASE_NUMBER_MAX] | None = None,
        environment: app_commands.Transform[str, EnvironmentOfThisServer] | None = None,
    ) -> None:
        """The last lines a release printed, redacted; shown only to you."""
        actor = Actor.of(interaction)
        structlog.contextvars.bind_contextvars(bot_name=bot.name)
        await interaction.response.defer(ephemeral=True, thinking=True)
        target = bot
        releases = await self.bot.releases.list(target)
        chosen = _release_to_read(target.name, releases, release)
        await send_release_log(
            interaction,
            actor,
            chosen,
            access=self.bot.access,
            storage=self.bot.storage,
            releases=self.bot.releases,
        )

    async def _releases_offered(self, target: Target) -> list[ReleaseRecord]:
        """For autocomplete: none while the target's host does not answer."""
        try:
            return await self.bot.releases.list(target)
        except ReleasesUnreadable:
            return []

    def _typed_target(self, interaction: discord.Interaction) -> tuple[Actor, Target | None]:
        """Who is typing, and the target named in the command's `bot` option so far (None
        when there is none, or commands are not enabled for them here)."""
        actor = Actor.of(interaction)
        if not self.bot.access.is_enabled(actor):
            return actor, None
        bot_name = str(getattr(interaction.namespace, "bot", "") or "").strip()
        try:
            return actor, self.bot.access.target_here(
                actor, bot_name, environment_asked(interaction)
            )
        except UserError:
            return actor, None

    @logs.autocomplete("release")
    async def readable_releases(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        """The bot's releases whose log this person may read."""
        actor, target = self._typed_target(interaction)
        if target is None or not self.bot.access.policy.belongs_here(actor, target):
            return []
        releases = await self._releases_offered(target)
        if not self.bot.access.policy.may_control_bot(actor, target):
            readable = []
            for release in releases:
                made_by = await self.bot.storage.get_deployment(release.workflow_id)
                if made_by is not None and self.bot.access.may_control(actor, made_by):
                    readable.append(release)
            releases = readable
        return release_choices(releases, current)


def _release_to_read(
    bot_name: str, releases: list[ReleaseRecord], number: int | None
) -> ReleaseRecord:
    if not releases:
        raise UserError(f"**{bot_name}** has no release yet.")
    if number is None:
        return max(releases, key=lambda release: release.number)
    require_release_number(number)
    for release in releases:
        if release.number == number:
            return release
    newest = max(release.number for release in releases)
    raise UserError(f"**{bot_name}** has no release #{number} (its releases: #1 to #{newest}).")


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, ShipcordBot)
    bot.add_dynamic_items(ShowLogButton)
    await bot.add_cog(ReleasesCog(bot))
