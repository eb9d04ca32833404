"""Failure notifications: exactly one per failed deployment, in the channel and by DM."""

from __future__ import annotations

import hashlib

import discord
import structlog

from bot.access.forbidden_channels import ForbiddenChannels
from bot.frontend_config import FrontEndConfig
from bot.pacing import Pacer, Priority
from bot.render import describe_rollback, render_failure_dm, render_failure_notice
from storage import DeploymentRecord, Storage
from workflows.models import DeploymentResult, is_snowflake

log = structlog.get_logger(__name__)

# Discord accepts string nonces of at most 25 characters.
NONCE_LENGTH = 25


def notification_nonce(workflow_id: str, where: str) -> str:
    return hashlib.sha256(f"{workflow_id}:{where}".encode()).hexdigest()[:NONCE_LENGTH]


class FailureNotifier:
    def __init__(
        self,
        *,
        client: discord.Client,
        storage: Storage,
        pacer: Pacer,
        config: FrontEndConfig,
        forbidden: ForbiddenChannels,
    ) -> None:
        self._client = client
        self._storage = storage
        self._pacer = pacer
        self._config = config
        self._forbidden = forbidden

    async def notify(self, record: DeploymentRecord, result: DeploymentResult) -> bool:
        """Tell the owner a deployment failed; True once the notification is done and claimed."""
        if record.notified:
            return True
        rollback = describe_rollback(
            result.compensations, release_number=result.release_number, ended_by=result.ended_by
        )
        url = self._config.workflow_url(record.workflow_id)
        # Another Temporal client names the owner: mentioned and messaged only if they are
        # a member of the server the deployment is shown in.
        member = await self._owner_is_member(record)
        if not await self._notify_channel(record, result, rollback, url, mention_owner=member):
            return False
        if member and not await self._notify_owner(record, result, rollback, url):
            return False
        await self._storage.claim_notification(record.workflow_id)
        log.info("failure_notified", owner_id=record.owner_id)
        return True

    async def _owner_is_member(self, record: DeploymentRecord) -> bool:
        if not record.guild_id or not is_snowflake(record.owner_id):
            return False
        guild = self._client.get_guild(int(record.guild_id))
        if guild is None:
            return False
        owner_id = int(record.owner_id)
        if guild.get_member(owner_id) is not None:
            return True
        try:
            await guild.fetch_member(owner_id)
        except discord.NotFound:
            log.info("failure_owner_not_a_member", owner_id=record.owner_id)
            return False
        return True

    async def _notify_channel(
        self,
        record: DeploymentRecord,
        result: DeploymentResult,
        rollback: str,
        url: str | None,
        *,
        mention_owner: bool,
    ) -> bool:
        if not record.channel_id or record.channel_id in self._forbidden:
            return True
        channel = self._client.get_partial_messageable(
            int(record.channel_id), guild_id=int(record.guild_id) if record.guild_id else None
        )
        notice = render_failure_notice(record, result.error, rollback, workflow_url=url)
        mentions = (
            discord.AllowedMentions(
                everyone=False, roles=False, users=[discord.Object(int(record.owner_id))]
            )
            if mention_owner
            else discord.AllowedMentions.none()
        )
        reference = (
            discord.MessageReference(
                message_id=int(record.message_id),
                channel_id=int(record.channel_id),
                fail_if_not_exists=False,
            )
            if record.message_id
            else None
        )
        nonce = notification_nonce(record.workflow_id, "channel")

        async def send_notice() -> discord.Message:
            if reference is None:
                return await channel.send(notice, allowed_mentions=mentions, nonce=nonce)
            return await channel.send(
                notice, allowed_mentions=mentions, nonce=nonce, reference=reference
            )

        try:
            await self._pacer.submit(
                record.channel_id,
                f"{record.workflow_id}:notice",
                send_notice,
                priority=Priority.URGENT,
            )
        except discord.Forbidden:
            self._forbidden.add(record.channel_id)
        except discord.HTTPException as failure:
            log.warning("failure_notice_not_sent", status=failure.status, error=str(failure))
            return False
        return True

    async def _notify_owner(
        self, record: DeploymentRecord, result: DeploymentResult, rollback: str, url: str | None
    ) -> bool:
        if not is_snowflake(record.owner_id):
            return True
        guild = self._client.get_guild(int(record.guild_id)) if record.guild_id else None
        dm = render_failure_dm(
            record,
            result.error,
            rollback,
            guild_name=guild.name if guild else None,
            workflow_url=url,
        )
        owner_id = int(record.owner_id)
        try:
            user = self._client.get_user(owner_id) or await self._client.fetch_user(owner_id)
            await user.send(dm, nonce=notification_nonce(record.workflow_id, "dm"))
        except discord.Forbidden:
            log.info("failure_dm_refused", owner_id=record.owner_id)
        except discord.NotFound:
            log.info("failure_dm_owner_unknown", owner_id=record.owner_id)
        except discord.HTTPException as failure:
            log.warning("failure_dm_not_sent", status=failure.status, error=str(failure))
            return False
        return True
