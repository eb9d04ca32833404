"""Starting a deployment for a person: the one path /deploy and /rollback share."""

from __future__ import annotations

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
    if at is not None:
        record = await _schedule(bot, interaction, actor, request, at)
    else:
        record = await _start_now(bot, interaction, actor, request)
    log.info(
        "deployment_started",
        workflow_id=record.workflow_id,
        version=request.version,
        restore_release=request.restore_release,
        scheduled=at is not None,
    )
    bot.meter.deployment_started()
    return record


async def _start_now(
    bot: ShipcordBot,
    interaction: discord.Interaction[Any],
    actor: Actor,
    request: DeploymentInput,
) -> DeploymentRecord:
    answer = DeployAnswer(interaction, bot.board)
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
                    interaction,
                    f"Deploying **{record.bot_name}** `{record.version}` as "
                    f"`{record.workflow_id}`; follow it with /status.",
                )
    except Exception as error:
        await answer.retract()
        refused = await _refusal(bot, actor, error)
        if refused is None:
            raise
        raise refused from None
    return record


async def _schedule(
    bot: ShipcordBot,
    interaction: discord.Interaction[Any],
    actor: Actor,
    request: DeploymentInput,
    at: datetime,
) -> DeploymentRecord:
    await interaction.response.defer(ephemeral=True, thinking=True)
    # Measured after the defer: the delay is what is left until the time asked for.
    delay = max(at - datetime.now(UTC), timedelta(0))
    try:
        record = await bot.service.start(request, start_delay=delay)
    except Exception as error:
        refused = await _refusal(bot, actor, error)
        if refused is None:
            raise
        raise refused from None
    stamp = int(at.timestamp())
    await reply(
        interaction,
        f"Scheduled **{record.bot_name}** `{record.version}` for <t:{stamp}:F> (<t:{stamp}:R>)"
        f" as `{record.workflow_id}`; /cancel removes it.",
    )
    return record


async def _refusal(bot: ShipcordBot, actor: Actor, error: Exception) -> UserError | None:
    """What the person is told about a start that failed; None for an unexpected error."""
    if isinstance(error, DeploymentConflict):
        return UserError(await conflict_answer(bot, actor, error))
    if is_unreachable(error):
        log.warning("temporal_unreachable", error=str(error))
        return UserError(UNREACHABLE)
    return None


async def conflict_answer(bot: ShipcordBot, actor: Actor, conflict: DeploymentConflict) -> str:
    """The deployment in the way is named only to people who may see it."""
    running = await bot.storage.get_deployment(conflict.running_workflow_id)
    if running is not None and bot.access.may_see(actor, running):
        return str(conflict)
    return (
        f"{conflict.bot_name} already has a deployment in progress; wait for it to finish "
        "or ask an admin of the server that started it."
    )
