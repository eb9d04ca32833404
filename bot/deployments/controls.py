"""What /pause, /resume, /cancel and the buttons (Approve and Reject too) do, in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import discord
import structlog

from bot.access.approval_rules import DECISIONS, refusal
from bot.access.installation_access import Access
from bot.access.policy import Actor
from bot.board.closed_rows import closed_result
from bot.interactions.user_answers import UserError, reply, report_unexpected
from bot.render import STATE_WORDS, mention
from storage import DeploymentRecord, Storage
from workflows.deployment_client import (
    QUERY_TIMEOUT,
    DeploymentClient,
    DeploymentNotFound,
    DeploymentSnapshot,
    is_unreachable,
)
from workflows.models import DeploymentState

log = structlog.get_logger(__name__)

TEMPORAL_TIMEOUT = 10.0
# A control does not need the status, only its refusals do ("already paused"): right after
# a crash, when no worker answers queries yet, it goes ahead without them.
CONTROL_QUERY_TIMEOUT = timedelta(seconds=0.8)
TEMPORAL_UNREACHABLE = (
    "Temporal is unreachable right now, so nothing was changed. Try again in a minute."
)
ACTIONS = ("pause", "resume", "cancel", *DECISIONS)


def unknown_deployment(workflow_id: str) -> UserError:
    return UserError(f"Unknown deployment `{workflow_id[:100]}` in this server.")


class Controller:
    def __init__(
        self,
        *,
        storage: Storage,
        deployments: DeploymentClient,
        access: Access,
        on_change: Callable[[], None],
    ) -> None:
        self._storage = storage
        self._deployments = deployments
        self._access = access
        self._on_change = on_change

    async def find_visible(self, actor: Actor, workflow_id: str) -> DeploymentRecord:
        """The deployment if the actor may see it; for them, others do not exist."""
        record = await self._storage.get_deployment(workflow_id.strip()[:200])
        if record is None or not self._access.may_see(actor, record):
            raise unknown_deployment(workflow_id)
        return record

    def may_control(self, actor: Actor, record: DeploymentRecord) -> bool:
        return self._access.may_control(actor, record)

    async def snapshot(
        self, workflow_id: str, *, query_timeout: timedelta = QUERY_TIMEOUT
    ) -> DeploymentSnapshot:
        try:
            async with asyncio.timeout(TEMPORAL_TIMEOUT):
                return await self._deployments.snapshot(workflow_id, query_timeout=query_timeout)
        except DeploymentNotFound:
            raise unknown_deployment(workflow_id) from None
        except Exception as error:
            if is_unreachable(error):
                log.warning("temporal_unreachable", error=str(error))
                raise UserError(TEMPORAL_UNREACHABLE) from error
            raise

    async def control(self, actor: Actor, action: str, workflow_id: str) -> str:
        """Pause, resume or cancel a deployment for `actor`; returns the confirmation."""
        record = await self.find_visible(actor, workflow_id)
        workflow_id = record.workflow_id
        if not self.may_control(actor, record):
            raise UserError(
                f"Only the owner ({mention(record.owner_id)}) or an admin (the admin role or "
                f"Manage Server) of the bot's server can {action} `{workflow_id}`."
            )
        snapshot = await self._open_snapshot(record)
        if snapshot.status is not None:
            self._refuse_in_state(snapshot.status.state, action, workflow_id)
        # Without a status (no worker answers yet), signals and cancellation still go
        # straight to Temporal, which delivers them when a worker is back.
        operation = {
            "pause": self._deployments.pause,
            "resume": self._deployments.resume,
            "cancel": self._deployments.cancel,
        }[action]
        await self._send(workflow_id, operation(workflow_id))
        log.info("deployment_controlled", action=action)
        self._on_change()
        return {
            "pause": f"Paused `{workflow_id}`: it stops before its next step.",
            "resume": f"Resumed `{workflow_id}`.",
            "cancel": f"Cancelling `{workflow_id}`: completed steps are being rolled back.",
        }[action]

    async def _open_snapshot(self, record: DeploymentRecord) -> DeploymentSnapshot:
        """The deployment as Temporal sees it now; a refusal once it has finished."""
        workflow_id = record.workflow_id
        if not record.is_open:
            state = closed_result(record).final_state
            raise UserError(f"`{workflow_id}` already finished: {state.value}.")
        snapshot = await self.snapshot(workflow_id, query_timeout=CONTROL_QUERY_TIMEOUT)
        if not snapshot.is_open:
            self._on_change()
            state_word = snapshot.result.final_state.value if snapshot.result else "closed"
            raise UserError(f"`{workflow_id}` already finished: {state_word}.")
        return snapshot

    async def _send(self, workflow_id: str, operation: Awaitable[None]) -> None:
        """A signal or a cancellation, with Temporal's failures as refusals."""
        try:
            async with asyncio.timeout(TEMPORAL_TIMEOUT):
                await operation
        except DeploymentNotFound:
            raise unknown_deployment(workflow_id) from None
        except Exception as error:
            if is_unreachable(error):
                raise UserError(TEMPORAL_UNREACHABLE) from error
            raise

    @staticmethod
    def _refuse_in_state(state: DeploymentState, action: str, workflow_id: str) -> None:
        if state.is_final or state is DeploymentState.ROLLING_BACK:
            raise UserError(
                f"`{workflow_id}` is {STATE_WORDS[state]} and can no longer be {action}d"
                if action != "cancel"
                else f"`{workflow_id}` is already {STATE_WORDS[state]}."
            )
        if action == "pause" and state is DeploymentState.AWAITING_APPROVAL:
            # The workflow waits for a person already; pausing would mean nothing.
            raise UserError(f"`{workflow_id}` is awaiting approval: approve, reject or cancel it.")
        if action == "pause" and state is DeploymentState.PAUSED:
            raise UserError(f"`{workflow_id}` is already paused.")
        if action == "resume" and state is not DeploymentState.PAUSED:
            raise UserError(f"`{workflow_id}` is not paused (it is {STATE_WORDS[state]}).")

    async def decide(self, actor: Actor, action: str, workflow_id: str) -> str:
        """Approve or reject a deployment awaiting approval for `actor`; the confirmation."""
        record = await self.find_visible(actor, workflow_id)
        workflow_id = record.workflow_id
        snapshot = await self._open_snapshot(record)
        target = self._access.target_of(record.bot_name)
        refused = refusal(self._access.policy, actor, record, target, snapshot.status, action)
        if refused is not None:
            raise UserError(refused)
        operation = self._deployments.approve if action == "approve" else self._deployments.reject
        await self._send(workflow_id, operation(workflow_id, actor.user_id))
        log.info("deployment_decided", action=action)
        self._on_change()
        if action == "approve":
            return f"Approved `{workflow_id}`: it carries on."
        return f"Rejected `{workflow_id}`: it ends cancelled, and what it did is rolled back."

    async def run_interaction(
        self, interaction: discord.Interaction[Any], action: str, workflow_id: str
    ) -> None:
        """The whole handling of a control button or command, errors included."""
        actor = Actor.from_interaction(interaction)
        with structlog.contextvars.bound_contextvars(
            workflow_id=workflow_id, guild_id=actor.guild_id, user_id=actor.user_id, action=action
        ):
            try:
                await interaction.response.defer(ephemeral=True, thinking=True)
                self._access.require_enabled(actor)
                if action in DECISIONS:
                    answer = await self.decide(actor, action, workflow_id)
                else:
                    answer = await self.control(actor, action, workflow_id)
                await reply(interaction, answer)
            except UserError as refusal:
                await reply(interaction, str(refusal))
            except Exception as error:
                await report_unexpected(interaction, error)
