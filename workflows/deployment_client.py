"""What a front end needs to start and steer deployments on Temporal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workflows.models import (
    APPROVE_SIGNAL,
    CONTROL_REFUSED,
    PAUSE_SIGNAL,
    REJECT_SIGNAL,
    RESUME_SIGNAL,
    STATUS_QUERY,
    WORKFLOW_NAME,
    DeploymentInput,
    DeploymentResult,
    DeploymentState,
    DeploymentStatus,
)

CLOSED_STATE_BY_STATUS = {
    WorkflowExecutionStatus.CANCELED: DeploymentState.CANCELLED,
    WorkflowExecutionStatus.FAILED: DeploymentState.FAILED,
    WorkflowExecutionStatus.TERMINATED: DeploymentState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: DeploymentState.FAILED,
}
# How Temporal closed a workflow that returned no result, and how that is said.
ENDED_BY = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.FAILED: "failed",
}
ENDED_WORDS = {
    "terminated": "Terminated in Temporal",
    "timed_out": "Timed out in Temporal",
    "cancelled": "Cancelled in Temporal",
    "failed": "The workflow failed in Temporal",
}
# Ids are deploy-{bot}-{ms}: a taken one moves to the next millisecond, this many times.
MAX_ID_ATTEMPTS = 1000
START_TIMEOUT_SECONDS = 10.0
# After an ambiguous start failure, how long to look whether the workflow exists after all.
START_CHECK_SECONDS = 3.0
RPC_TIMEOUT = timedelta(seconds=10)
QUERY_TIMEOUT = timedelta(seconds=1.5)


class UnreadableDeployment(ValueError):
    """A workflow of the deployment type whose input shipcord cannot read."""

    def __init__(self, workflow_id: str, reason: str) -> None:
        super().__init__(f"{workflow_id}: {reason}")
        self.workflow_id = workflow_id
        self.reason = reason


class ControlRefused(Exception):
    """The workflow refused a control (an update's validator), from its own state."""

    def __init__(self, workflow_id: str, reason: str, state: DeploymentState) -> None:
        super().__init__(f"{workflow_id} refused: {reason} ({state.value})")
        self.workflow_id = workflow_id
        self.reason = reason
        self.state = state


class NoWorkerAnswered(Exception):
    """No worker took an update in time (none runs, or all are busy): the workflow has not
    answered, and a signal is the way to reach it once a worker is back."""


class DeploymentNotFound(LookupError):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"There is no deployment {workflow_id}.")
        self.workflow_id = workflow_id


def unix_ms() -> int:
    return time.time_ns() // 1_000_000


def is_unreachable(error: BaseException) -> bool:
    """True when the error says Temporal could not be reached (as opposed to a refusal)."""
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


@dataclass(frozen=True, slots=True)
class DeploymentSnapshot:
    """A deployment seen from outside: live status while open (None while no worker
    answers its query), the result once closed."""

    workflow_id: str
    is_open: bool
    status: DeploymentStatus | None
    result: DeploymentResult | None
    attempt: int | None
    # When a deployment started with a delay will start (None once it has).
    scheduled_for: datetime | None = None


class DeploymentClient:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @property
    def task_queue(self) -> str:
        return self._task_queue

    async def start(
        self,
        request: DeploymentInput,
        *,
        workflow_id: str,
        start_delay: timedelta | None = None,
    ) -> None:
        """Start a deployment workflow under `workflow_id`; the caller made the id. With a
        `start_delay`, Temporal starts it then (durably: whatever runs or restarts)."""
        await self._client.start_workflow(
            WORKFLOW_NAME,
            request,
            id=workflow_id,
            task_queue=self._task_queue,
            result_type=DeploymentResult,
            start_delay=start_delay,
        )

    def handle(self, workflow_id: str) -> WorkflowHandle[object, DeploymentResult]:
        return self._client.get_workflow_handle(workflow_id, result_type=DeploymentResult)

    async def exists(self, workflow_id: str) -> bool:
        try:
            await self.handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def status(
        self, workflow_id: str, *, timeout: timedelta = QUERY_TIMEOUT
    ) -> DeploymentStatus:
        """The `status` query. A query needs a worker (Temporal routes it to the one that ran
        the workflow last, even if that one died): it gives up after `timeout`."""
        try:
            return await self.handle(workflow_id).query(
                STATUS_QUERY, result_type=DeploymentStatus, rpc_timeout=timeout
            )
        except RPCError as error:
            raise _translate(error, workflow_id) from error

    async def pause(self, workflow_id: str) -> None:
        await self._signal(workflow_id, PAUSE_SIGNAL)

    async def resume(self, workflow_id: str) -> None:
        await self._signal(workflow_id, RESUME_SIGNAL)

    async def approve(self, workflow_id: str, approver: str) -> None:
        await self._signal(workflow_id, APPROVE_SIGNAL, approver)

    async def reject(self, workflow_id: str, approver: str) -> None:
        await self._signal(workflow_id, REJECT_SIGNAL, approver)

    async def steer(
        self, workflow_id: str, update: str, *args: object, wait: timedelta
    ) -> DeploymentStatus:
        """Run a control update and return the status it left; ControlRefused when the
        workflow refused it, NoWorkerAnswered when no worker answered within `wait`."""
        handle = self.handle(workflow_id)
        try:
            async with asyncio.timeout(wait.total_seconds()):
                status: DeploymentStatus = await handle.execute_update(
                    update, args=list(args), result_type=DeploymentStatus, rpc_timeout=wait
                )
                return status
        except WorkflowUpdateFailedError as failed:
            cause = failed.cause
            if isinstance(cause, ApplicationError) and cause.type == CONTROL_REFUSED:
                reason, state = [*cause.details, "refused", "running"][:2]
                raise ControlRefused(workflow_id, str(reason), DeploymentState(state)) from None
            raise
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise NoWorkerAnswered(workflow_id) from None
        except RPCError as error:
            if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise NoWorkerAnswered(workflow_id) from None
            raise _translate(error, workflow_id) from error

    async def cancel(self, workflow_id: str) -> None:
        try:
            await self.handle(workflow_id).cancel()
        except RPCError as error:
            raise _translate(error, workflow_id) from error

    async def result(self, workflow_id: str) -> DeploymentResult:
        return await self.handle(workflow_id).result()

    async def snapshot(
        self, workflow_id: str, *, query_timeout: timedelta = QUERY_TIMEOUT
    ) -> DeploymentSnapshot:
        """Describe first: a query to a closed workflow replays its whole history."""
        handle = self.handle(workflow_id)
        try:
            description = await handle.describe()
        except RPCError as error:
            raise _translate(error, workflow_id) from error
        if description.status == WorkflowExecutionStatus.RUNNING:
            starts = description.raw_description.workflow_execution_info.execution_time
            if starts.seconds and starts.ToDatetime(tzinfo=UTC) > datetime.now(UTC):
                return DeploymentSnapshot(
                    workflow_id, True, None, None, None, starts.ToDatetime(tzinfo=UTC)
                )
            attempt = max(
                (activity.attempt for activity in description.raw_description.pending_activities),
                default=None,
            )
            try:
                status: DeploymentStatus | None = await self.status(
                    workflow_id, timeout=query_timeout
                )
            except RPCError as error:
                if not is_unreachable(error) and error.status != RPCStatusCode.CANCELLED:
                    raise
                # Temporal answered describe: it is the worker that does not answer yet.
                status = None
            if status is not None and attempt is not None:
                status.attempt = attempt
            return DeploymentSnapshot(workflow_id, True, status, None, attempt)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            result = await handle.result()
        else:
            closed = description.status or WorkflowExecutionStatus.FAILED
            result = closed_without_result(
                closed,
                # Where it stopped: a query to a closed workflow is answered by a worker
                # replaying its history (None when no worker answers in time).
                await self._status_or_none(workflow_id, query_timeout),
                await self._close_reason(workflow_id, closed),
            )
        return DeploymentSnapshot(workflow_id, False, None, result, None)

    async def _status_or_none(
        self, workflow_id: str, timeout: timedelta
    ) -> DeploymentStatus | None:
        try:
            return await self.status(workflow_id, timeout=timeout)
        except Exception:  # no worker, another version's answer, a history it cannot replay
            return None

    async def _close_reason(self, workflow_id: str, closed: WorkflowExecutionStatus) -> str | None:
        """The reason given to `terminate`, from the workflow's close event."""
        if closed != WorkflowExecutionStatus.TERMINATED:
            return None
        try:
            events = self.handle(workflow_id).fetch_history_events(
                event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT,
                rpc_timeout=RPC_TIMEOUT,
            )
            async for event in events:
                if event.HasField("workflow_execution_terminated_event_attributes"):
                    reason = event.workflow_execution_terminated_event_attributes.reason
                    return " ".join(reason.split())[:200] or None
        except Exception:
            return None
        return None

    async def started_since(self, moment: datetime) -> AsyncIterator[WorkflowExecution]:
        """Deployments on this task queue started since `moment`, by any client (Temporal's
        visibility)."""
        stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = (
            f'WorkflowType = "{WORKFLOW_NAME}" AND TaskQueue = "{self._task_queue}"'
            f' AND StartTime > "{stamp}"'
        )
        async for execution in self._client.list_workflows(query, rpc_timeout=RPC_TIMEOUT):
            yield execution

    async def input_of(self, workflow_id: str) -> DeploymentInput:
        """What the deployment was started with, from its history (no worker needed),
        decoded as the workers decode it (the payload codec included). Raises
        UnreadableDeployment when it is not a deployment input shipcord can read."""
        events = self.handle(workflow_id).fetch_history_events(page_size=1, rpc_timeout=RPC_TIMEOUT)
        async for event in events:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            if not payloads:
                raise UnreadableDeployment(workflow_id, "it was started without an input")
            try:
                [raw] = await self._client.data_converter.decode(payloads[:1])
            except Exception as error:  # an unknown encoding, a key that does not fit, ...
                raise UnreadableDeployment(
                    workflow_id, f"its input cannot be decoded ({type(error).__name__})"
                ) from None
            try:
                return DeploymentInput.model_validate(raw)
            except ValidationError as error:
                raise UnreadableDeployment(
                    workflow_id, f"its input is not a deployment ({error.error_count()} problems)"
                ) from None
        raise UnreadableDeployment(workflow_id, "its history has no start event")

    async def signal(self, workflow_id: str, signal: str, *args: object) -> None:
        await self._signal(workflow_id, signal, *args)

    async def _signal(self, workflow_id: str, signal: str, *args: object) -> None:
        try:
            await self.handle(workflow_id).signal(signal, *args)
        except RPCError as error:
            raise _translate(error, workflow_id) from error


def closed_without_result(
    closed: WorkflowExecutionStatus, last: DeploymentStatus | None, reason: str | None
) -> DeploymentResult:
    """The result of a workflow that returned none (terminated, timed out, failed or
    cancelled in Temporal): what ended it, and where it was when it stopped, as far as
    `last` (its last known status) says."""
    ended_by = ENDED_BY.get(closed, "failed")
    why = f": {reason}" if reason else ""
    result = DeploymentResult(
        success=False,
        state=CLOSED_STATE_BY_STATUS.get(closed, DeploymentState.FAILED),
        error=f"{ENDED_WORDS[ended_by]}{why}.",
        ended_by=ended_by,
    )
    return with_last_status(result, last)


def with_last_status(result: DeploymentResult, last: DeploymentStatus | None) -> DeploymentResult:
    """A result that lacks where the deployment stopped (one the workflow did not return),
    completed from its last known status; a result that says so itself is kept as it is."""
    if last is None or result.ended_by is None:
        return result
    known = {
        "step": result.step or last.step,
        "progress": result.progress if result.progress is not None else last.progress,
        "release_number": result.release_number or last.release_number,
        "previous_release_number": result.previous_release_number or last.previous_release_number,
        "restored_release": result.restored_release or last.restored_release,
        "compensations": result.compensations or list(last.compensations),
        "approval": result.approval or last.approval,
        "host": result.host or last.host,
    }
    return result.model_copy(update=known)


def _translate(error: RPCError, workflow_id: str) -> Exception:
    if error.status == RPCStatusCode.NOT_FOUND:
        return DeploymentNotFound(workflow_id)
    return error


__all__ = [
    "ENDED_WORDS",
    "ControlRefused",
    "DeploymentClient",
    "DeploymentNotFound",
    "DeploymentSnapshot",
    "NoWorkerAnswered",
    "UnreadableDeployment",
    "closed_without_result",
    "is_unreachable",
    "with_last_status",
]
