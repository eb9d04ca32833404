"""/deploy answers with the progress message itself.

The answer is the interaction's own response, in public: it appears at once, Discord
shows who ran the command above it, and it needs no post in the channel, whose bucket
every deployment there shares. It is sent once the deployment has started, so a refusal
(unknown bot, malformed version, a deployment of that bot in progress, no permission,
Temporal unreachable) is answered privately and leaves nothing public behind.

Discord wants an acknowledgement within 3 s. Starting takes milliseconds; when Temporal
is slower than `ANSWER_GUARD` to accept the start, the interaction is acknowledged
privately ("thinking…", seen by the person alone) and the progress message follows as a
public followup, edited through the same interaction's webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord
import structlog

from bot.progress import ProgressBoard
from bot.views import progress_view
from storage import DeploymentRecord
from workflows.models import DeploymentState

log = structlog.get_logger(__name__)

T = TypeVar("T")
NO_MENTIONS = discord.AllowedMentions.none()
# Seconds to wait for the start before acknowledging privately: well inside Discord's 3.
ANSWER_GUARD = 1.5


async def within_deadline(interaction: discord.Interaction[Any], work: Awaitable[T]) -> T:
    """Await `work`; if it takes longer than `ANSWER_GUARD`, acknowledge the interaction
    privately meanwhile, so that its 3 s pass with nothing public shown."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=ANSWER_GUARD)
        if not done:
            await interaction.response.defer(ephemeral=True, thinking=True)
        return await task
    except BaseException:
        task.cancel()
        raise


async def answer_with_progress(
    interaction: discord.Interaction[Any], board: ProgressBoard, record: DeploymentRecord
) -> bool:
    """Answer with the deployment's progress message and hand it to the board; False when
    Discord refused the answer (the board then posts the message in the channel)."""
    card = board.card_for(record)
    view = progress_view(record.workflow_id, DeploymentState.RUNNING)
    assert view is not None
    try:
        if interaction.response.is_done():
            # Acknowledged privately: say so there, then show the progress in public.
            await interaction.followup.send(
                f"Deploying **{record.bot_name}** `{record.version}` as "
                f"`{record.workflow_id}`; its progress follows in this channel.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            message: Any = await interaction.followup.send(
                card.content,
                embed=card.discord_embed(),
                view=view,
                wait=True,
                allowed_mentions=NO_MENTIONS,
            )
        else:
            response = await interaction.response.send_message(
                card.content, embed=card.discord_embed(), view=view, allowed_mentions=NO_MENTIONS
            )
            message = response.resource
            if not isinstance(message, discord.InteractionMessage):
                message = await interaction.original_response()
    except discord.HTTPException as error:
        log.warning("deploy_answer_failed", status=error.status, code=error.code)
        return False
    await board.answered(record, interaction=interaction, message=message, card=card)
    return True
