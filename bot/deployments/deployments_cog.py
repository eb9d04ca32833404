"""Slash commands: /deploy, /status, /pause, /resume, /cancel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import structlog
from discord import app_commands
from discord.ext import commands

from bot.access.policy import Actor
from bot.board.closed_rows import closed_result
from bot.command_options import (
    ENVIRONMENT_OPTION,
    ControllableDeployment,
    DeployableBot,
    DeployableEnvironment,
    DeployVersion,
    EnvironmentOfThisServer,
    PromotableBot,
    StartTime,
    VisibleDeployment,
)
from bot.deployments.controls import TEMPORAL_UNREACHABLE
from bot.deployments.deploy_launch import deployment_request, launch
from bot.deployments.hosts_status import render_hosts, worth_showing
from bot.deployments.status_lines import open_deployment_line
from bot.discord_client import ShipcordBot
from bot.interactions.user_answers import UserError, fit, reply
from bot.render import (
    parse_timestamp,
    render_scheduled_line,
    render_status_detail,
    render_status_list,
)
from bot.shipcord_cog import ShipcordCog, server_command
from storage import DeploymentRecord, IncidentRecord
from workflows.activity_models import PromotionCheck
from workflows.deployment_client import is_unreachable
from workflows.hosts import DEFAULT_HOST
from workflows.models import unit_name
from workflows.promotion import PromotionRefused, promotable
from workflows.targets import Target

log = structlog.get_logger(__name__)

DEPLOY_OPTIONS = {
    "bot": "The bot to deploy, as named in the targets file",
    "version": "The version to deploy, e.g. 1.4.0 or latest",
    "at": "Start later: a delay such as in 30m, a UTC time such as 14:30, or 2026-12-24T18:00",
    "environment": ENVIRONMENT_OPTION,
}
PROMOTE_OPTIONS = {
    "bot": "The bot whose release to promote",
    "source": "The environment whose live release to promote, e.g. staging",
    "destination": "The environment to deploy that release to, e.g. production",
}
STATUS_LIST_LIMIT = 15
INCIDENTS_SHOWN_FOR = timedelta(hours=24)
INCIDENTS_LISTED = 5


def control_command(action: str, summary: str, option: str) -> Any:
    """/pause, /resume or /cancel: the same command but for its action."""

    async def steer(
        cog: DeploymentsCog,
        interaction: discord.Interaction,
        deployment: app_commands.Transform[str, ControllableDeployment],
    ) -> None:
        await cog._control(interaction, action, deployment)

    steer.__doc__ = summary
    # A method of the cog, as discord.py tells methods apart: by their qualified name.
    steer.__qualname__ = f"DeploymentsCog.{action}"
    command = app_commands.command(name=action, description=summary)(steer)
    command = app_commands.describe(deployment=option)(command)
    command = app_commands.default_permissions(manage_guild=True)(command)
    return app_commands.guild_only()(command)


def host_line(host: str | None) -> str:
    """Where the deployment runs, past one machine (on one, as before hosts: nothing)."""
    return f"\nHost: {host}" if host is not None and host != DEFAULT_HOST else ""


class DeploymentsCog(ShipcordCog, name="Deployments"):
    @server_command("deploy", for_managers=True, options=DEPLOY_OPTIONS)
    async def deploy(
        self,
        interaction: discord.Interaction,
        bot: app_commands.Transform[Target, DeployableBot],
        version: app_commands.Transform[str, DeployVersion],
        at: app_commands.Transform[datetime | None, StartTime] | None = None,
        environment: app_commands.Transform[str, DeployableEnvironment] | None = None,
    ) -> None:
        """Deploy a bot; the answer is its progress, shown in this channel."""
        actor = Actor.of(interaction)
        structlog.contextvars.bind_contextvars(bot_name=bot.name)
        await self._refuse_unpromoted(bot, version)
        request = deployment_request(interaction, actor, bot, version)
        await launch(self.bot, interaction, actor, request, at=at)

    @server_command("promote", for_managers=True, options=PROMOTE_OPTIONS)
    @app_commands.rename(source="from", destination="to")
    async def promote(
        self,
        interaction: discord.Interaction,
        bot: app_commands.Transform[str, PromotableBot],
        source: app_commands.Transform[str, EnvironmentOfThisServer],
        destination: app_commands.Transform[str, DeployableEnvironment],
    ) -> None:
        """Deploy to one environment exactly the release live in another."""
        actor, access = Actor.of(interaction), self.bot.access
        target = access.target_to_deploy(actor, bot, destination)
        structlog.contextvars.bind_contextvars(bot_name=target.name)
        if target.promote_from is not None and target.promote_from != source:
            raise UserError(
                f"**{bot}** takes releases in {destination} from {target.promote_from} only, "
                f"not from {source}."
            )
        origin = access.target_here(actor, bot, source)
        if origin is None or origin.environment is None:
            raise UserError(f"**{bot}** has no environment {source[:20]!r} in this server.")
        live = await self.bot.releases.live(origin)
        if live is None:
            raise UserError(f"Nothing is live in {source} for **{bot}**: nothing to promote.")
        await self._refuse_unpromoted(target, live.version)
        request = deployment_request(interaction, actor, target, live.version)
        await launch(self.bot, interaction, actor, request)

    async def _refuse_unpromoted(self, target: Target, version: str) -> None:
        """A release that may not come to `target` yet is refused at once where the source
        environment's releases and incidents are at hand; the workflow checks anyway."""
        if target.promote_from is None:
            return
        source = self.bot.access.target_of(unit_name(target.bot_name, target.promote_from))
        if source is None or not self.bot.releases.is_local(source):
            return
        check = PromotionCheck(
            source=source.name, source_host="", version=version, soak=target.soak
        )
        try:
            await promotable(self.bot.storage, check, datetime.now(UTC))
        except PromotionRefused as refused:
            raise UserError(str(refused)) from None

    @server_command("status")
    @app_commands.describe(deployment="A deployment id; leave empty to list this server's")
    async def status(
        self,
        interaction: discord.Interaction,
        deployment: app_commands.Transform[str, VisibleDeployment] | None = None,
    ) -> None:
        """Show one deployment in detail, or the open deployments of this server."""
        actor = Actor.of(interaction)
        structlog.contextvars.bind_contextvars(workflow_id=deployment)
        await interaction.response.defer(ephemeral=True, thinking=True)
        self.bot.access.require_enabled(actor)
        if deployment:
            await reply(interaction, await self._status_of(actor, deployment))
        else:
            await reply(interaction, await self._status_list(actor))

    async def _status_of(self, actor: Actor, workflow_id: str) -> str:
        record = await self.bot.controller.find_visible(actor, workflow_id)
        now = datetime.now(UTC)
        url = self.bot.config.workflow_url(record.workflow_id)
        if not record.is_open:
            result = closed_result(record)
            detail = render_status_detail(record, None, result, now=now, workflow_url=url)
            return fit(detail + host_line(result.host))
        snapshot = await self.bot.controller.snapshot(record.workflow_id)
        if snapshot.scheduled_for is not None:
            scheduled = render_scheduled_line(record, snapshot.scheduled_for)
            return fit(scheduled + (f"\n[Open in Temporal Web UI](<{url}>)" if url else ""))
        status = snapshot.status or self.bot.board.last_status(record.workflow_id)
        detail = render_status_detail(record, status, snapshot.result, now=now, workflow_url=url)
        host = snapshot.result.host if snapshot.result is not None else None
        detail += host_line(host or (status.host if status is not None else None))
        if snapshot.is_open and snapshot.status is None:
            detail += "\nNo worker answers yet (restarting?): this is the last known status."
        return fit(detail)

    async def _status_list(self, actor: Actor) -> str:
        records = [
            record
            for record in await self.bot.storage.list_open_deployments()
            if self.bot.access.may_see(actor, record)
        ]
        shown = records[:STATUS_LIST_LIMIT]

        async def line(record: DeploymentRecord) -> str:
            last = self.bot.board.last_status(record.workflow_id)
            return await open_deployment_line(record, last, self.bot.controller.snapshot)

        try:
            lines = await asyncio.gather(*(line(record) for record in shown))
        except Exception as error:
            if is_unreachable(error):
                raise UserError(TEMPORAL_UNREACHABLE) from error
            raise
        listing = render_status_list(lines, total=len(records))
        incidents = await self._recent_incidents(actor)
        if incidents:
            listing += "\n\nRecent incidents:\n" + "\n".join(map(incident_line, incidents))
        hosts = await self.bot.service.hosts()
        if worth_showing(hosts):
            listing += "\n\n" + render_hosts(hosts)
        return fit(listing)

    async def _recent_incidents(self, actor: Actor) -> list[IncidentRecord]:
        """What supervision did lately to the bots of this server."""
        since = (datetime.now(UTC) - INCIDENTS_SHOWN_FOR).isoformat(timespec="milliseconds")
        shown = []
        for incident in await self.bot.storage.recent_incidents(since=since):
            target = self.bot.access.target_of(incident.bot_name)
            if target is not None and self.bot.access.policy.belongs_here(actor, target):
                shown.append(incident)
        return shown[:INCIDENTS_LISTED]

    async def _control(
        self, interaction: discord.Interaction, action: str, deployment: str
    ) -> None:
        await self.bot.controller.run_interaction(interaction, action, deployment)

    pause = control_command(
        "pause", "Pause a deployment before its next step.", "The deployment to pause (its id)"
    )
    resume = control_command(
        "resume", "Resume a paused deployment.", "The paused deployment to resume (its id)"
    )
    cancel = control_command(
        "cancel",
        "Cancel a deployment and roll back what it did.",
        "The deployment to cancel (its id); it is rolled back",
    )


def incident_line(incident: IncidentRecord) -> str:
    created = parse_timestamp(incident.created_at)
    when = f"<t:{int(created.timestamp())}:R> " if created else ""
    return when + incident.message


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, ShipcordBot)
    await bot.add_cog(DeploymentsCog(bot))
