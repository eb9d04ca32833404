"""Starting a deployment for a person: the one path /deploy and /rollback share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import structlog

from bot.access.policy import Actor
from bot.deployments.deploy_answer import DeployAnswer
from bot.discord_client import ShipcordBot
from bot.interactions.user_answers import UserError, reply
from storage import DeploymentConflict, DeploymentRecord
from workflows.deployment_client import is_unreachable
from workflows.models import DeploymentInput
from workflows.targets import Target

log = structlog.get_logger(__name__)

UNREACHABLE = "Temporal is unreachable right now, so nothing was deployed. Try again in a minute."


def deployment_request(
    interaction: discord.Interaction[Any],
    actor: Actor,
    target: Target,
    version: str,
    *,
    restore_release: int | None = None,
) -> DeploymentInput:
    """What a person's /deploy or /rollback asks the workflow for, from where they asked."""
    return DeploymentInput(
        bot_name=target.bot_name,
        environment=target.environment,
        bot_type=target.type,
        owner=actor.user_id,
        version=version,
        guild_id=actor.guild_id,
        channel_id=str(interaction.channel_id) if interaction.channel_id else None,
        restore_release=restore_release,
    )


async def launch(
    bot: ShipcordBot,
    interaction: discord.Interaction[Any],
    actor: Actor,
    request: DeploymentInput,
    *,
    at: datetime | None = None,
) -> DeploymentRecord:
    """Start `request` for `actor` and answer the interaction; UserError for a refusal."""
    start = _Start(bot, interaction, actor, request)
    record = await (start.later(at) if at is not None else start.now())
    log.info(
        "deployment_started",
        workflow_id=record.workflow_id,
        version=request.version,
        restore_release=request.restore_release,
        scheduled=at is not None,
    )
    bot.meter.deployment_started()
    return record


@dataclass(frozen=True, slots=True)
class _Start:
    """One person's start of one deployment, now or at a time."""

    bot: ShipcordBot
    interaction: discord.Interaction[Any]
    actor: Actor
    request: DeploymentInput

    async def now(self) -> DeploymentRecord:
        bot, request = self.bot, self.request
        answer = DeployAnswer(self.interaction, bot.board)
        try:
            record = await answer.in_time(bot.service.reserve(request))
            # Until the answer is recorded as its progress message, the board keeps off.
            with bot.board.hold(record.workflow_id):
                launch = bot.service.launch(record, request)
                if request.channel_id:
                    await answer.while_starting(record, launch)
                else:
                    await answer.in_time(launch)
                structlog.contextvars.bind_contextvars(workflow_id=record.workflow_id)
                if request.channel_id:
                    await answer.started(record)
                else:
                    await reply(
                        self.interaction,
                        f"Deploying **{record.bot_name}** `{record.version}` as "
                        f"`{record.workflow_id}`; follow it with /status.",
                    )
        except Exception as error:
            await answer.retract()
            raise await self._refusal(error) from None
        return record

    async def later(self, at: datetime) -> DeploymentRecord:
        await self.interaction.response.defer(ephemeral=True, thinking=True)
        # Measured after the defer: the delay is what is left until the time asked for.
        delay = max(at - datetime.now(UTC), timedelta(0))
        try:
            record = await self.bot.service.start(self.request, start_delay=delay)
        except Exception as error:
            raise await self._refusal(error) from None
        stamp = int(at.timestamp())
        await reply(
            self.interaction,
            f"Scheduled **{record.bot_name}** `{record.version}` for <t:{stamp}:F> "
            f"(<t:{stamp}:R>) as `{record.workflow_id}`; /cancel removes it.",
        )
        return record

    async def _refusal(self, error: Exception) -> UserError:
        """What the person is told about a start that failed; an unexpected error is
        raised again as it is."""
        if isinstance(error, DeploymentConflict):
            return UserError(await conflict_answer(self.bot, self.actor, error))
        if is_unreachable(error):
            log.warning("temporal_unreachable", error=str(error))
            return UserError(UNREACHABLE)
        raise error


async def conflict_answer(bot: ShipcordBot, actor: Actor, conflict: DeploymentConflict) -> str:
    """The deployment in the way is named only to people who may see it."""
    running = await bot.storage.get_deployment(conflict.running_workflow_id)
    if running is not None and bot.access.may_see(actor, running):
        return str(conflict)
    return (
        f"{conflict.bot_name} already has a deployment in progress; wait for it to finish "
        "or ask an admin of the server that started it."
    )
