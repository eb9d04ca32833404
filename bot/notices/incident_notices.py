"""Telling owners what supervision did: each incident once, in the bot's channel, and by DM
when the bot is down (a crash loop)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import discord
import structlog

from bot.access.forbidden_channels import ForbiddenChannels
from bot.pacing import Pacer, Priority
from bot.render import mention
from storage import DeploymentRecord, IncidentRecord, Storage
from workflows.models import is_snowflake
from workflows.rounds import Rounds

log = structlog.get_logger(__name__)

NONCE_LENGTH = 25
# Incidents older than this are not told any more (say, after a long outage of the bot).
TELL_HORIZON = timedelta(days=1)
ICONS = {
    "restarted": "🔁",
    "crash_looping": "🚨",
    "orphan_stopped": "🧹",
    "host_gone": "🔴",
    "host_back": "🟢",
}
# The bot may be down, or cannot be helped: its owner hears of it by DM as well.
DM_KINDS = frozenset({"crash_looping", "host_gone"})


def incident_nonce(incident: IncidentRecord, where: str) -> str:
    return hashlib.sha256(f"incident:{incident.key}:{where}".encode()).hexdigest()[:NONCE_LENGTH]


def render_incident(incident: IncidentRecord, owner_id: str | None) -> str:
    icon = ICONS.get(incident.kind, "⚠️")
    who = f"{mention(owner_id)} " if owner_id else ""
    return f"{icon} {who}{incident.message}"[:2000]


class IncidentNotifier:
    def __init__(
        self,
        *,
        client: discord.Client,
        storage: Storage,
        pacer: Pacer,
        forbidden: ForbiddenChannels,
        interval: float,
    ) -> None:
        self._client = client
        self._storage = storage
        self._pacer = pacer
        self._forbidden = forbidden
        self._rounds = Rounds(
            "shipcord-incidents",
            self.tell_all,
            interval=interval,
            failure_event="incident_notices_failed",
            first_wait_for=client.wait_until_ready,
        )

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def tell_all(self) -> int:
        """Tell every incident not told yet; returns how many were told."""
        since = (datetime.now(UTC) - TELL_HORIZON).isoformat(timespec="milliseconds")
        told = 0
        for incident in await self._storage.undelivered_incidents(since=since):
            with structlog.contextvars.bound_contextvars(
                bot_name=incident.bot_name, incident=incident.key
            ):
                if await self._tell(incident):
                    await self._storage.mark_incident_notified(incident.id)
                    told += 1
        return told

    async def _tell(self, incident: IncidentRecord) -> bool:
        deployment = await self._deployment_of(incident)
        owner_id = deployment.owner_id if deployment else None
        text = render_incident(incident, owner_id)
        if deployment is not None and deployment.channel_id:
            if not await self._post(incident, deployment, text):
                return False
        if incident.kind in DM_KINDS and owner_id and is_snowflake(owner_id):
            if not await self._send_dm(incident, int(owner_id), text):
                return False
        if deployment is None or not deployment.channel_id:
            log.info("incident_without_channel", message=incident.message)
        return True

    async def _deployment_of(self, incident: IncidentRecord) -> DeploymentRecord | None:
        if incident.workflow_id:
            made_it = await self._storage.get_deployment(incident.workflow_id)
            if made_it is not None and made_it.channel_id:
                return made_it
        return await self._storage.latest_deployment_of(incident.bot_name)

    async def _post(
        self, incident: IncidentRecord, deployment: DeploymentRecord, text: str
    ) -> bool:
        channel_id = deployment.channel_id
        assert channel_id is not None
        if channel_id in self._forbidden:
            return True
        channel = self._client.get_partial_messageable(
            int(channel_id), guild_id=int(deployment.guild_id) if deployment.guild_id else None
        )
        owner = deployment.owner_id
        mentions = (
            discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(int(owner))])
            if is_snowflake(owner)
            else discord.AllowedMentions.none()
        )
        nonce = incident_nonce(incident, "channel")

        async def send() -> discord.Message:
            return await channel.send(text, allowed_mentions=mentions, nonce=nonce)

        try:
            await self._pacer.submit(
                channel_id, f"incident:{incident.id}", send, priority=Priority.URGENT
            )
        except discord.Forbidden:
            self._forbidden.add(channel_id)
        except discord.HTTPException as failure:
            log.warning("incident_notice_not_sent", status=failure.status)
            return False
        return True

    async def _send_dm(self, incident: IncidentRecord, owner_id: int, text: str) -> bool:
        try:
            user = self._client.get_user(owner_id) or await self._client.fetch_user(owner_id)
            await user.send(text, nonce=incident_nonce(incident, "dm"))
        except (discord.Forbidden, discord.NotFound):
            log.info("incident_dm_refused", owner_id=str(owner_id))
        except discord.HTTPException as failure:
            log.warning("incident_dm_not_sent", status=failure.status)
            return False
        return True
