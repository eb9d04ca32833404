"""What people (and other clients) do to a running deployment: the status query, pause,
resume, approve and reject, as signals and as updates the workflow answers itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        APPROVE_SIGNAL,
        APPROVE_UPDATE,
        CONTROL_REFUSED,
        OWNER,
        PAUSE_SIGNAL,
        PAUSE_UPDATE,
        REJECT_SIGNAL,
        REJECT_UPDATE,
        RESUME_SIGNAL,
        RESUME_UPDATE,
        STATUS_QUERY,
        ApprovalRecord,
        DeploymentState,
        DeploymentStatus,
        canonical_snowflake,
        id_number,
    )
    from workflows.targets import ApprovalRule

# The approval gate ended without an approval: the deployment ends cancelled.
APPROVAL_REFUSED = "ApprovalRefused"
# The patch under which approvers are Discord ids compared as numbers.
APPROVER_AS_SNOWFLAKE = "approver-as-snowflake"


def format_timeout(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


class DeploymentControls:
    """The deployment's state as people see and steer it; botDeploymentWorkflow runs it."""

    def __init__(self) -> None:
        self._status = DeploymentStatus()
        self._paused = False
        # Set once the last step runs: a pause would have no next step to stop before.
        self._finishing = False

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> DeploymentStatus:
        return self._status

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        if self._pause_refusal() is None:
            self._paused = True
            self._status.state = DeploymentState.PAUSED
            self._status.updated_at = workflow.now()

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._status.state is DeploymentState.PAUSED:
                self._status.state = DeploymentState.RUNNING
            self._status.updated_at = workflow.now()

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, approver: Any) -> None:
        self._decide("approved", approver)

    @workflow.signal(name=REJECT_SIGNAL)
    def reject(self, approver: Any) -> None:
        self._decide("rejected", approver)

    # The same controls as updates: the workflow answers, from its own state, atomically,
    # whether it did what was asked; the signals above stay for clients that only signal.

    @workflow.update(name=PAUSE_UPDATE)
    def pause_now(self) -> DeploymentStatus:
        self.pause()
        return self._status

    @pause_now.validator
    def _validate_pause(self) -> None:
        self._refuse(self._pause_refusal())

    @workflow.update(name=RESUME_UPDATE)
    def resume_now(self) -> DeploymentStatus:
        self.resume()
        return self._status

    @resume_now.validator
    def _validate_resume(self) -> None:
        self._refuse(None if self._paused else "not_paused")

    @workflow.update(name=APPROVE_UPDATE)
    def approve_now(self, approver: Any) -> DeploymentStatus:
        self._decide("approved", approver)
        return self._status

    @approve_now.validator
    def _validate_approve(self, approver: Any) -> None:
        self._refuse(self._decision_refusal(approver))

    @workflow.update(name=REJECT_UPDATE)
    def reject_now(self, approver: Any) -> DeploymentStatus:
        self._decide("rejected", approver)
        return self._status

    @reject_now.validator
    def _validate_reject(self, approver: Any) -> None:
        self._refuse(self._decision_refusal(approver))

    def _pause_refusal(self) -> str | None:
        if self._finishing:
            return "finishing"
        return None if self._status.state is DeploymentState.RUNNING else "not_running"

    def _decision_refusal(self, approver: Any) -> str | None:
        if self._status.state is not DeploymentState.AWAITING_APPROVAL:
            return "not_awaiting_approval"
        if self._status.approval is not None:
            return "decided"
        canonical = canonical_snowflake(approver)
        if canonical is None:
            return "not_a_user_id"
        if id_number(canonical) == id_number(self._status.owner):
            return "requester"
        return None

    def _refuse(self, reason: str | None) -> None:
        """Refuse an update, saying why and in which state the deployment is."""
        if reason is not None:
            raise ApplicationError(
                f"refused: {reason}", reason, self._status.state.value, type=CONTROL_REFUSED
            )

    def _decide(self, decision: str, approver: Any) -> None:
        """The first decision counts; the person who asked for the deployment cannot take
        it (four eyes), and a decision before the gate, or from nobody, is ignored.

        The approver is a Discord id, compared as a number: "0" + the owner's id, or the
        owner's id as an int or with spaces, is still the owner.
        """
        if self._status.state is not DeploymentState.AWAITING_APPROVAL:
            return
        if self._status.approval is not None:
            return
        canonical = canonical_snowflake(approver)
        owner = id_number(self._status.owner)
        by_owner = owner is not None and id_number(approver) == owner
        legacy = approver if isinstance(approver, str) else ""
        if isinstance(approver, int) and abs(approver) < 10**64:
            legacy = str(approver)
        legacy_valid = OWNER.fullmatch(legacy) is not None and legacy != self._status.owner
        # Histories recorded before this rule accepted labels and other spellings of ids:
        # they replay as they ran; the marker is written only where the rules differ.
        if legacy_valid and (canonical is None or by_owner):
            if not workflow.patched(APPROVER_AS_SNOWFLAKE):
                canonical, by_owner = legacy, False
        if by_owner:
            workflow.logger.warning("Ignored a %s by the requester", decision)
            return
        if canonical is None:
            workflow.logger.warning(
                "Ignored a %s signal whose approver is not a Discord user id", decision
            )
            return
        self._status.approval = ApprovalRecord(decision=decision, by=canonical, at=workflow.now())
        self._status.updated_at = workflow.now()

    async def _await_approval(self, rule: ApprovalRule) -> None:
        """Wait durably for an approval; a rejection or the timeout ends the deployment."""
        await self._wait_while_paused()
        status = self._status
        status.state = DeploymentState.AWAITING_APPROVAL
        status.approval_role = rule.role
        status.approval_deadline = workflow.now() + timedelta(seconds=rule.timeout)
        status.updated_at = workflow.now()
        try:
            await workflow.wait_condition(
                lambda: status.approval is not None, timeout=timedelta(seconds=rule.timeout)
            )
        except TimeoutError:
            status.approval = ApprovalRecord(decision="timed_out", at=workflow.now())
        status.approval_deadline = None
        approval = status.approval
        assert approval is not None
        if approval.decision == "approved":
            status.state = DeploymentState.RUNNING
            status.updated_at = workflow.now()
            return
        reason = (
            f"Rejected by {approval.by}"
            if approval.decision == "rejected"
            else f"Not approved within {format_timeout(rule.timeout)}"
        )
        raise ApplicationError(reason, type=APPROVAL_REFUSED, non_retryable=True)

    async def _wait_while_paused(self) -> None:
        await workflow.wait_condition(lambda: not self._paused)
