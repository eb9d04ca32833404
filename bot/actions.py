"""What /pause, /resume, /cancel and the buttons do, in one place.

Errors a user can cause are `UserError`s: their message is shown as is, ephemerally.
Anything else is logged with the ids of the interaction and answered with a reference.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

import discord
import structlog
from temporalio.service import RPCError, RPCStatusCode

from bot.permissions import Actor, can_control, is_visible
from bot.render import STATE_WORDS, final_state, mention
from storage.records import DeploymentRecord
from workflows.client import DeploymentNotFound, DeploymentSnapshot

if TYPE_CHECKING:
    from bot.client import ShipcordBot

log = structlog.get_logger(__name__)

TEMPORAL_TIMEOUT = 10.0
TEMPORAL_UNREACHABLE = (
    "Temporal is unreachable right now, so nothing was changed. Try again in a minute."
)
NO_MENTIONS = discord.AllowedMentions.none()


class UserError(Exception):
    """A refusal or a mistake the user can fix; the message is shown to them as is."""


def unknown_deployment(workflow_id: str) -> UserError:
    return UserError(f"Unknown deployment `{workflow_id[:100]}` in this server.")


def is_unreachable(error: BaseException) -> bool:
    if isinstance(error, TimeoutError | OSError):
        return True
    # A client that has never reached its server (connected lazily) fails this way.
    if isinstance(error, RuntimeError) and str(error).startswith("Failed client connect"):
        return True
    return isinstance(error, RPCError) and error.status in (
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.UNKNOWN,
    )


async def find_visible_deployment(
    bot: ShipcordBot, actor: Actor, workflow_id: str
) -> DeploymentRecord:
    """The deployment if it belongs to the actor's server; other servers' do not exist."""
    record = await bot.storage.get_deployment(workflow_id.strip())
    if record is None or not is_visible(actor, record):
        raise unknown_deployment(workflow_id)
    return record


async def snapshot_or_explain(bot: ShipcordBot, workflow_id: str) -> DeploymentSnapshot:
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT):
            return await bot.deployments.snapshot(workflow_id)
    except DeploymentNotFound:
        raise unknown_deployment(workflow_id) from None
    except Exception as error:
        if is_unreachable(error):
            log.warning("temporal_unreachable", error=str(error))
            raise UserError(TEMPORAL_UNREACHABLE) from error
        raise


async def control(bot: ShipcordBot, actor: Actor, action: str, workflow_id: str) -> str:
    """Pause, resume or cancel a deployment for `actor`; returns the confirmation."""
    record = await find_visible_deployment(bot, actor, workflow_id)
    workflow_id = record.workflow_id
    if not can_control(actor, record, bot.settings.admin_role):
        raise UserError(
            f"Only the owner ({mention(record.owner_id)}), a member with the admin role or a "
            f"member with Manage Server can {action} `{workflow_id}`."
        )
    if not record.is_open:
        raise UserError(f"`{workflow_id}` already finished: {record.state}.")
    snapshot = await snapshot_or_explain(bot, workflow_id)
    if not snapshot.is_open or snapshot.status is None:
        bot.board.wake()
        state = final_state(snapshot.result) if snapshot.result else None
        raise UserError(f"`{workflow_id}` already finished: {state.value if state else 'closed'}.")
    state = snapshot.status.state
    if state.is_final or state.value == "rolling_back":
        raise UserError(
            f"`{workflow_id}` is {STATE_WORDS[state]} and can no longer be {action}d"
            if action != "cancel"
            else f"`{workflow_id}` is already {STATE_WORDS[state]}."
        )
    if action == "pause" and state.value == "paused":
        raise UserError(f"`{workflow_id}` is already paused.")
    if action == "resume" and state.value != "paused":
        raise UserError(f"`{workflow_id}` is not paused (it is {STATE_WORDS[state]}).")
    operation = {
        "pause": bot.deployments.pause,
        "resume": bot.deployments.resume,
        "cancel": bot.deployments.cancel,
    }[action]
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT):
            await operation(workflow_id)
    except DeploymentNotFound:
        raise unknown_deployment(workflow_id) from None
    except Exception as error:
        if is_unreachable(error):
            raise UserError(TEMPORAL_UNREACHABLE) from error
        raise
    log.info("deployment_controlled", action=action)
    bot.board.wake()
    return {
        "pause": f"Paused `{workflow_id}`: it stops before its next step.",
        "resume": f"Resumed `{workflow_id}`.",
        "cancel": f"Cancelling `{workflow_id}`: completed steps are being rolled back.",
    }[action]


async def reply(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer ephemerally whether or not the interaction was deferred already."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def report_unexpected(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Log an unexpected error with a short reference and show the user that reference."""
    reference = secrets.token_hex(3).upper()
    log.error("interaction_failed", ref=reference, exc_info=error)
    try:
        await reply(
            interaction, f"Something went wrong; the error has been logged (ref {reference})."
        )
    except discord.HTTPException as failure:  # the interaction may have expired meanwhile
        log.warning("error_reply_failed", status=failure.status)


async def run_control_interaction(
    bot: ShipcordBot, interaction: discord.Interaction[Any], action: str, workflow_id: str
) -> None:
    """The whole handling of a control button or command, errors included."""
    actor = Actor.from_interaction(interaction)
    with structlog.contextvars.bound_contextvars(
        workflow_id=workflow_id, guild_id=actor.guild_id, user_id=actor.user_id, action=action
    ):
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await reply(interaction, await control(bot, actor, action, workflow_id))
        except UserError as refusal:
            await reply(interaction, str(refusal))
        except Exception as error:
            await report_unexpected(interaction, error)
