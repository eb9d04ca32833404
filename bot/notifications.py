"""Failure notifications: exactly one per failed deployment, in the channel and by DM.

How "exactly one, even across restarts" holds:

* Only the progress board sends them, one finalisation per deployment at a time, and only
  for rows whose `notified` flag is still 0.
* Every send carries a nonce derived from the workflow id (discord.py sends a nonce
  with `enforce_nonce: true`):
  Discord (and the test double) answer a repeated nonce in the same channel with the
  message already created instead of a second one.
* The `notified` flag is claimed in SQLite *after* both sends succeeded. A crash between
  the sends and the claim makes the next run send again with the same nonces, which
  Discord de-duplicates (it keeps nonces for a few minutes; a restart later than that
  could show the notice twice, which beats losing it: claiming first would lose the
  notice for good on a crash between claim and send).
* A closed DM (Forbidden) is logged and counts as done; other errors leave the flag at 0
  so the next pass tries again.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import discord
import structlog

from bot.pacing import ChannelPacer, Priority
from bot.render import describe_rollback, render_failure_dm, render_failure_notice
from storage.records import DeploymentRecord
from workflows.models import DeploymentStatus

if TYPE_CHECKING:
    from bot.client import ShipcordBot

log = structlog.get_logger(__name__)

# Discord accepts string nonces of at most 25 characters.
NONCE_LENGTH = 25


def notification_nonce(workflow_id: str, where: str) -> str:
    return hashlib.sha256(f"{workflow_id}:{where}".encode()).hexdigest()[:NONCE_LENGTH]


async def notify_failure(
    bot: ShipcordBot,
    pacer: ChannelPacer,
    record: DeploymentRecord,
    *,
    error: str | None,
    last_status: DeploymentStatus | None,
) -> bool:
    """Tell the owner a deployment failed; True once the notification is done and claimed."""
    if record.notified:
        return True
    release = await bot.storage.get_release_of_workflow(record.workflow_id)
    rollback = describe_rollback(last_status, release.status if release else None)
    url = bot.settings.workflow_url(record.workflow_id)
    owner_mentions = discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(int(record.owner_id))]
    )
    if record.channel_id and record.channel_id not in bot.board.forbidden_channels:
        channel = bot.get_partial_messageable(
            int(record.channel_id), guild_id=int(record.guild_id) if record.guild_id else None
        )
        notice = render_failure_notice(record, error, rollback, workflow_url=url)
        reference = (
            discord.MessageReference(
                message_id=int(record.message_id),
                channel_id=int(record.channel_id),
                fail_if_not_exists=False,
            )
            if record.message_id
            else None
        )

        async def send_notice() -> discord.Message:
            nonce = notification_nonce(record.workflow_id, "channel")
            if reference is None:
                return await channel.send(notice, allowed_mentions=owner_mentions, nonce=nonce)
            return await channel.send(
                notice, allowed_mentions=owner_mentions, nonce=nonce, reference=reference
            )

        try:
            await pacer.submit(
                record.channel_id,
                f"{record.workflow_id}:notice",
                send_notice,
                priority=Priority.URGENT,
            )
        except discord.Forbidden:
            bot.board.forbid_channel(record.channel_id)
        except discord.HTTPException as failure:
            log.warning("failure_notice_not_sent", status=failure.status, error=str(failure))
            return False
    guild = bot.get_guild(int(record.guild_id)) if record.guild_id else None
    dm = render_failure_dm(
        record, error, rollback, guild_name=guild.name if guild else None, workflow_url=url
    )
    try:
        user = bot.get_user(int(record.owner_id)) or await bot.fetch_user(int(record.owner_id))
        await user.send(dm, nonce=notification_nonce(record.workflow_id, "dm"))
    except discord.Forbidden:
        log.info("failure_dm_refused", owner_id=record.owner_id)
    except discord.NotFound:
        log.info("failure_dm_owner_unknown", owner_id=record.owner_id)
    except discord.HTTPException as failure:
        log.warning("failure_dm_not_sent", status=failure.status, error=str(failure))
        return False
    await bot.storage.claim_notification(record.workflow_id)
    log.info("failure_notified", owner_id=record.owner_id)
    return True
