"""botDeploymentWorkflow: validate, record, deploy, health-check, finish; saga rollback.

Deterministic and side-effect free: every read or write of the outside world is an
activity. Pausing waits between steps (Temporal's own pause would reject queries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows.activity_names import ActivityName
    from workflows.heartbeat import HEARTBEAT_TIMEOUT
    from workflows.models import (
        PAUSE_SIGNAL,
        RESUME_SIGNAL,
        STATUS_QUERY,
        WORKFLOW_NAME,
        CompensationRecord,
        CreateRecordInput,
        DeploymentInput,
        DeploymentRef,
        DeploymentResult,
        DeploymentState,
        DeploymentStatus,
        OutcomeInput,
        ReleaseInfo,
        Step,
        ValidatedDeployment,
    )

ResultT = TypeVar("ResultT")

RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["ValidationError", "TokenRejected", "DeploymentConflict"],
)
START_TO_CLOSE = timedelta(minutes=5)
SCHEDULE_TO_CLOSE = timedelta(minutes=10)
SCHEDULE_TO_START = timedelta(minutes=1)


def raise_if_cancel_requested() -> None:
    """Raise CancelledError if this task was cancelled while an activity ran to completion.

    An activity that finishes before it hears of the cancellation resolves normally, and
    the SDK then leaves the workflow's task uncancelled: the request would be lost.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


async def run_to_completion(work: Awaitable[None]) -> None:
    """Run `work` to its end even if the workflow is cancelled meanwhile.

    Compensations and the final record must finish: a cancellation that arrives while they
    run is absorbed instead of abandoning them half-way.
    """
    task = asyncio.ensure_future(work)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue
    task.result()


def describe_invalid_input(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "input"
        problems.append(f"{field}: {item['msg']}")
    return "; ".join(problems)


def describe_failure(error: BaseException) -> str:
    """The innermost message of an activity failure, which is what a person can act on."""
    cause: BaseException | None = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError) and cause.message:
        return cause.message
    return str(cause) or type(cause).__name__


@workflow.defn(name=WORKFLOW_NAME)
class BotDeploymentWorkflow:
    def __init__(self) -> None:
        self._status = DeploymentStatus()
        self._paused = False
        self._compensations: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    @workflow.run
    async def run(self, raw_request: dict[str, Any]) -> DeploymentResult:
        # Validated here, not by the data converter: a malformed input from any client
        # must end the deployment with a clear error instead of failing workflow tasks.
        info = workflow.info()
        try:
            request = DeploymentInput.model_validate(raw_request)
        except ValidationError as error:
            message = "Invalid deployment input: " + describe_invalid_input(error)
            self._status.state = DeploymentState.FAILED
            self._status.last_error = message
            return DeploymentResult(success=False, error=message, state=DeploymentState.FAILED)
        self._status = DeploymentStatus(
            workflow_id=info.workflow_id,
            bot_name=request.bot_name,
            version=request.version,
            owner=request.owner,
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            started_at=workflow.now(),
            updated_at=workflow.now(),
        )
        ref = DeploymentRef(
            workflow_id=info.workflow_id, bot_name=request.bot_name, version=request.version
        )
        release: ReleaseInfo | None = None
        try:
            await self._enter(Step.VALIDATING)
            validated = await self._activity(ActivityName.VALIDATE, ref, ValidatedDeployment)

            await self._enter(Step.CREATING_RECORD)
            # Compensations are registered before their step runs: a step that failed
            # part-way may have done some of its work, and undoing is idempotent.
            self._on_rollback(ActivityName.MARK_ROLLED_BACK, ref)
            release = await self._activity(
                ActivityName.CREATE_RECORD,
                CreateRecordInput(
                    workflow_id=info.workflow_id,
                    bot_name=request.bot_name,
                    bot_type=request.bot_type,
                    version=request.version,
                    runtime=validated.runtime,
                    owner=request.owner,
                    guild_id=request.guild_id,
                    channel_id=request.channel_id,
                ),
                ReleaseInfo,
            )
            self._status.release_number = release.release_number

            await self._enter(Step.DEPLOYING)
            self._on_rollback(ActivityName.RESTORE_COMMANDS, ref)
            self._on_rollback(ActivityName.STOP_RELEASE, ref)
            await self._activity(ActivityName.DEPLOY, ref, None)

            await self._enter(Step.HEALTH_CHECK)
            await self._activity(ActivityName.HEALTH_CHECK, ref, None)

            await self._wait_while_paused()
            await self._activity(ActivityName.FINISH, ref, None)
        except BaseException as error:
            cancelled = is_cancelled_exception(error)
            if not cancelled and not isinstance(error, ActivityError | ApplicationError):
                # A bug in this workflow: let the task fail and retry after a fix.
                raise
            final = DeploymentState.CANCELLED if cancelled else DeploymentState.FAILED
            message = "Deployment cancelled" if cancelled else describe_failure(error)
            self._status.last_error = None if cancelled else message
            await run_to_completion(self._roll_back())
            self._status.state = final
            await run_to_completion(self._record_outcome(info.workflow_id, final, message))
            return DeploymentResult(
                success=False,
                bot_id=release.bot_id if release else None,
                error=message,
                state=final,
                release_number=release.release_number if release else None,
            )
        # Deployed: a cancellation that arrives from here on is too late to undo anything.
        self._complete_step()
        self._set_step(Step.DEPLOYED)
        self._status.state = DeploymentState.SUCCEEDED
        await run_to_completion(
            self._record_outcome(info.workflow_id, DeploymentState.SUCCEEDED, None)
        )
        return DeploymentResult(
            success=True,
            bot_id=release.bot_id,
            state=DeploymentState.SUCCEEDED,
            release_number=release.release_number,
        )

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> DeploymentStatus:
        return self._status

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        if self._status.state is DeploymentState.RUNNING:
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

    async def _enter(self, step: Step) -> None:
        await self._wait_while_paused()
        self._complete_step()
        self._set_step(step)

    async def _wait_while_paused(self) -> None:
        await workflow.wait_condition(lambda: not self._paused)

    def _complete_step(self) -> None:
        current = self._status.step
        if current != Step.STARTING.value and current not in self._status.completed_steps:
            self._status.completed_steps.append(current)

    def _set_step(self, step: Step) -> None:
        self._status.step = step.value
        self._status.progress = step.progress
        self._status.updated_at = workflow.now()

    def _on_rollback(self, name: ActivityName, ref: DeploymentRef) -> None:
        async def compensate() -> None:
            await self._activity(name, ref, None)

        self._compensations.append((name.value, compensate))

    async def _roll_back(self) -> None:
        self._paused = False
        self._status.state = DeploymentState.ROLLING_BACK
        self._status.step = Step.ROLLING_BACK.value
        self._status.updated_at = workflow.now()
        for name, compensate in reversed(self._compensations):
            try:
                await compensate()
                self._status.compensations.append(CompensationRecord(name=name, ok=True))
            except ActivityError as error:
                # One failed compensation must not stop the others from running.
                detail = describe_failure(error)
                workflow.logger.warning("Compensation %s failed: %s", name, detail)
                self._status.compensations.append(
                    CompensationRecord(name=name, ok=False, detail=detail)
                )
            self._status.updated_at = workflow.now()
        self._status.step = Step.ROLLED_BACK.value

    async def _record_outcome(
        self, workflow_id: str, state: DeploymentState, error: str | None
    ) -> None:
        try:
            await self._activity(
                ActivityName.RECORD_OUTCOME,
                OutcomeInput(workflow_id=workflow_id, state=state, error=error),
                None,
            )
        except ActivityError as failure:
            workflow.logger.warning("Could not record the outcome: %s", describe_failure(failure))

    async def _activity(
        self, name: ActivityName, argument: object, result_type: type[ResultT] | None
    ) -> ResultT:
        result: Any = await workflow.execute_activity(
            name.value,
            argument,
            result_type=result_type,
            start_to_close_timeout=START_TO_CLOSE,
            schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
            schedule_to_start_timeout=SCHEDULE_TO_START,
            retry_policy=RETRY_POLICY,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            # A cancelled step must have stopped before its compensation starts.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        raise_if_cancel_requested()
        return result
