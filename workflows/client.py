"""What a front end needs to start and steer deployments on Temporal."""

from __future__ import annotations

import time
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from workflows.models import (
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
    STATUS_QUERY,
    WORKFLOW_NAME,
    DeploymentInput,
    DeploymentResult,
    DeploymentState,
    DeploymentStatus,
    deployment_workflow_id,
)

CLOSED_STATE_BY_STATUS = {
    WorkflowExecutionStatus.CANCELED: DeploymentState.CANCELLED,
    WorkflowExecutionStatus.FAILED: DeploymentState.FAILED,
    WorkflowExecutionStatus.TERMINATED: DeploymentState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: DeploymentState.FAILED,
}


class DeploymentNotFound(LookupError):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"There is no deployment {workflow_id}.")
        self.workflow_id = workflow_id


@dataclass(frozen=True, slots=True)
class DeploymentSnapshot:
    """A deployment seen from outside: live status while open, the result once closed."""

    workflow_id: str
    is_open: bool
    status: DeploymentStatus | None
    result: DeploymentResult | None
    attempt: int | None


class DeploymentClient:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def start(self, request: DeploymentInput, *, unix_ms: int | None = None) -> str:
        """Start a deployment workflow and return its id."""
        millis = unix_ms if unix_ms is not None else time.time_ns() // 1_000_000
        workflow_id = deployment_workflow_id(request.bot_name, millis)
        await self._client.start_workflow(
            WORKFLOW_NAME,
            request,
            id=workflow_id,
            task_queue=self._task_queue,
            result_type=DeploymentResult,
        )
        return workflow_id

    def handle(self, workflow_id: str) -> WorkflowHandle[object, DeploymentResult]:
        return self._client.get_workflow_handle(workflow_id, result_type=DeploymentResult)

    async def status(self, workflow_id: str) -> DeploymentStatus:
        try:
            return await self.handle(workflow_id).query(STATUS_QUERY, result_type=DeploymentStatus)
        except RPCError as error:
            raise _translate(error, workflow_id) from error

    async def pause(self, workflow_id: str) -> None:
        await self._signal(workflow_id, PAUSE_SIGNAL)

    async def resume(self, workflow_id: str) -> None:
        await self._signal(workflow_id, RESUME_SIGNAL)

    async def cancel(self, workflow_id: str) -> None:
        try:
            await self.handle(workflow_id).cancel()
        except RPCError as error:
            raise _translate(error, workflow_id) from error

    async def result(self, workflow_id: str) -> DeploymentResult:
        return await self.handle(workflow_id).result()

    async def snapshot(self, workflow_id: str) -> DeploymentSnapshot:
        """Describe first: a query to a closed workflow replays its whole history."""
        handle = self.handle(workflow_id)
        try:
            description = await handle.describe()
        except RPCError as error:
            raise _translate(error, workflow_id) from error
        if description.status == WorkflowExecutionStatus.RUNNING:
            attempt = max(
                (activity.attempt for activity in description.raw_description.pending_activities),
                default=None,
            )
            status = await self.status(workflow_id)
            if attempt is not None:
                status.attempt = attempt
            return DeploymentSnapshot(workflow_id, True, status, None, attempt)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            result = await handle.result()
        else:
            state = CLOSED_STATE_BY_STATUS.get(
                description.status or WorkflowExecutionStatus.FAILED, DeploymentState.FAILED
            )
            result = DeploymentResult(
                success=False, state=state, error=f"The workflow ended as {state.value}."
            )
        return DeploymentSnapshot(workflow_id, False, None, result, None)

    async def _signal(self, workflow_id: str, signal: str) -> None:
        try:
            await self.handle(workflow_id).signal(signal)
        except RPCError as error:
            raise _translate(error, workflow_id) from error


def _translate(error: RPCError, workflow_id: str) -> Exception:
    if error.status == RPCStatusCode.NOT_FOUND:
        return DeploymentNotFound(workflow_id)
    return error
