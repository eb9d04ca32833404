"""Answering a person with a release's log: /logs and the "Show log" button share this."""

from __future__ import annotations

import io
from typing import Any

import discord
import structlog

from bot.access.installation_access import Access
from bot.access.policy import Actor
from bot.interactions.user_answers import NO_MENTIONS, UserError, reply
from bot.releases.release_rules import log_answer
from storage import ReleaseRecord, Storage
from workflows.release_reading import HostReleases

log = structlog.get_logger(__name__)

# The most of a log that is read; beyond one message's worth it is sent as a file.
LOG_FILE_CHARS = 256_000


async def send_release_log(
    interaction: discord.Interaction[Any],
    actor: Actor,
    release: ReleaseRecord,
    *,
    access: Access,
    storage: Storage,
    releases: HostReleases,
) -> None:
    """Answer (the interaction is deferred ephemerally) with `release`'s log, or refuse."""
    target = access.target_of(release.bot_name)
    made_by = await storage.get_deployment(release.workflow_id)
    if target is None or not access.may_read_logs(actor, target, made_by):
        raise UserError(
            f"Only the admins of **{release.bot_name}**'s server (the admin role or Manage "
            "Server), or the owner of the deployment that made that release, may read its log."
        )
    tail = await releases.tail(target, release.number, max_chars=LOG_FILE_CHARS)
    if tail is None:
        raise UserError(f"**{release.bot_name}** has no release #{release.number}.")
    text, attached = log_answer(tail)
    log.info(
        "release_log_read",
        bot_name=release.bot_name,
        release=release.number,
        attached=attached is not None,
    )
    if attached is None:
        await reply(interaction, text)
        return
    await interaction.followup.send(
        text,
        file=discord.File(
            io.BytesIO(attached.encode()), filename=f"{release.bot_name}-{release.number}.log"
        ),
        ephemeral=True,
        allowed_mentions=NO_MENTIONS,
    )
