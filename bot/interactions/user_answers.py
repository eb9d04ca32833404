"""Answering a person: refusals they can act on, and a reference for everything else."""

from __future__ import annotations

import secrets
from typing import Any

import discord
import structlog

from workflows.redaction import redact

log = structlog.get_logger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
# Discord rejects message content above 2000 characters.
MAX_CONTENT_CHARS = 2000


class UserError(Exception):
    """A refusal or a mistake the user can fix; the message is shown to them as is."""


def fit(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    """Redact a text (every answer leaves through here), then cut it to what Discord
    accepts, saying so."""
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def reply(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer ephemerally whether or not the interaction was deferred already."""
    text = fit(text)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def reply_quietly(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer, and only log it when Discord refuses (the interaction may have expired)."""
    try:
        await reply(interaction, text)
    except discord.HTTPException as failure:
        log.warning("reply_failed", status=failure.status)


async def report_unexpected(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Log an unexpected error with a short reference and show the user that reference."""
    reference = secrets.token_hex(3).upper()
    log.error("interaction_failed", ref=reference, exc_info=error)
    await reply_quietly(
        interaction, f"Something went wrong; the error has been logged (ref {reference})."
    )
