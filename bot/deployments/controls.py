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
    ControlRefused,
    DeploymentClient,
    DeploymentNotFound,
    DeploymentSnapshot,
    NoWorkerAnswered,
    is_unreachable,
)
from workflows.models import STEERING, DeploymentState

log = structlog.get_logger(__name__)

TEMPORAL_TIMEOUT = 10.0
# How long a control waits for the workflow's own answer before it goes as a signal.
UPDATE_WAIT = timedelta(seconds=2)
# A cancellation does not need the status, only its refusals do: right after a crash, when
# no worker answers queries yet, it goes ahead without them.
CONTROL_QUERY_TIMEOUT = timedelta(seconds=0.8)
TEMPORAL_UNREACHABLE = (
    "Temporal is unreachable right now, so nothing was changed. Try again in a minute."
)
ACTIONS = ("pause", "resume", "cancel", *DECISIONS)
DONE = {
    "pause": "Paused `{workflow_id}`: it stops before its next step.",
    "resume": "Resumed `{workflow_id}`.",
    "approve": "Approved `{workflow_id}`: it carries on.",
    "reject": "Rejected `{workflow_id}`: it ends cancelled, and what it did is rolled back.",
}
# No worker answered in time (right after a restart, or none runs): the signal went.
SENT = {
    action: f"{verb} `{{workflow_id}}` as soon as a worker picks it up (none answered just "
    "now); the request is with Temporal."
    for action, verb in (
        ("pause", "Pausing"),
        ("resume", "Resuming"),
        ("approve", "Approving"),
        ("reject", "Rejecting"),
    )
}
# Why the workflow refused, as a person reads it (the state is added where it helps).
REFUSALS = {
    "finishing": "`{workflow_id}` is finishing its last step: there is nothing left to pause.",
    "not_paused": "`{workflow_id}` is not paused (it is {state}).",
    "not_awaiting_approval": "`{workflow_id}` is not awaiting approval (it is {state}).",
    "decided": "`{workflow_id}` was already decided.",
    "not_a_user_id": "Only a Discord user can decide on `{workflow_id}`.",
    "requester": "You asked for `{workflow_id}`: someone else has to approve or reject it.",
}


def refusal_text(refused: ControlRefused, action: str, workflow_id: str) -> str:
    state = refused.state
    if refused.reason == "not_running":
        if state is DeploymentState.PAUSED:
            return f"`{workflow_id}` is already paused."
        if state is DeploymentState.AWAITING_APPROVAL:
            return f"`{workflow_id}` is awaiting approval: approve, reject or cancel it."
        return f"`{workflow_id}` is {STATE_WORDS[state]} and can no longer be {action}d."
    template = REFUSALS.get(refused.reason, "`{workflow_id}` cannot be {action}d now ({state}).")
    return template.format(workflow_id=workflow_id, state=STATE_WORDS[state], action=action)


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
        if action == "cancel":
            snapshot = await self._open_snapshot(record)
            if snapshot.status is not None:
                self._refuse_in_state(snapshot.status.state, action, workflow_id)
            # Without a status (no worker answers yet), the cancellation still goes straight
            # to Temporal, which delivers it when a worker is back.
            await self._send(workflow_id, self._deployments.cancel(workflow_id))
            answer = f"Cancelling `{workflow_id}`: completed steps are being rolled back."
        else:
            answer = await self._steer(record, action)
        log.info("deployment_controlled", action=action)
        self._on_change()
        return answer

    async def _steer(self, record: DeploymentRecord, action: str, *args: str) -> str:
        """Ask the workflow itself (an update): it does what was asked or says why not, from
        its own state. When no worker answers in time, the signal goes instead, and applies
        as soon as a worker picks the deployment up."""
        workflow_id = record.workflow_id
        if not record.is_open:
            state = closed_result(record).final_state
            raise UserError(f"`{workflow_id}` already finished: {state.value}.")
        update, signal = STEERING[action]
        try:
            await self._deployments.steer(workflow_id, update, *args, wait=UPDATE_WAIT)
        except ControlRefused as refused:
            raise UserError(refusal_text(refused, action, workflow_id)) from None
        except NoWorkerAnswered:
            await self._send(workflow_id, self._deployments.signal(workflow_id, signal, *args))
            log.info("control_sent_as_signal", action=action)
            return SENT[action].format(workflow_id=workflow_id)
        except DeploymentNotFound:
            # Temporal says so of a workflow that has just closed, too.
            await self._open_snapshot(record)
            raise unknown_deployment(workflow_id) from None
        except Exception as error:
            if is_unreachable(error):
                raise UserError(TEMPORAL_UNREACHABLE) from error
            raise
        return DONE[action].format(workflow_id=workflow_id)

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
        answer = await self._steer(record, action, actor.user_id)
        log.info("deployment_decided", action=action)
        self._on_change()
        return answer

    async def run_interaction(
        self, interaction: discord.Interaction[Any], action: str, workflow_id: str
    ) -> None:
        """The whole handling of a control button or command, errors included."""
        actor = Actor.of(interaction)
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
