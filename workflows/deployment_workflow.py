"""botDeploymentWorkflow: validate, record, deploy, health-check, finish; saga rollback.
Every change to the commands it issues is guarded by a patch (docs/upgrading.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutType,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows.activities import DeploymentActivities
    from workflows.activity_models import (
        CreateReleaseInput,
        DeploymentRef,
        PromotedRelease,
        PromotionCheck,
        RecallInput,
        ReleaseInfo,
        ReleaseRef,
        StepReport,
        TokenCheck,
        ValidatedDeployment,
    )
    from workflows.deployment_controls import APPROVAL_REFUSED, DeploymentControls
    from workflows.heartbeat import HEARTBEAT_TIMEOUT
    from workflows.hosts import ON_ANOTHER_HOST, host_gone_message, host_task_queue
    from workflows.models import (
        WORKFLOW_NAME,
        CompensationRecord,
        DeploymentInput,
        DeploymentResult,
        DeploymentState,
        DeploymentStatus,
        Step,
    )
    from workflows.targets import Target
    from workflows.validation import validation_problems

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
Compensation = Callable[[], Awaitable[StepReport]]

# The patch family of deployments validated before the target travelled with them.
BEFORE_RECORDED_TARGETS = "before-recorded-targets"
# Activities of that version that no longer exist: skipped once past its history.
RECORD_OUTCOME = "record_outcome"
# Validation on the shared queue reads no token; `check_bot_token` reads it on the bot's
# host, so that a worker needs only its own host's bots' tokens. Without the marker: the
# token was read by `validate_deployment`, and no `check_bot_token` was scheduled.
TOKEN_ON_HOST = "token-on-host"
# The same, for a c107ed9 deployment validated again after the upgrade (its own id: the
# decision at the start was taken while replaying, and `patched` is memoised per id).
TOKEN_ON_HOST_REVALIDATED = "token-on-host/revalidated"
# Validation, the token check, the record and the last step run as local activities of the
# worker that takes the workflow task (no round trip through a queue): validation anywhere,
# the others when that worker is on the release's host, else on its queue as before.
# Without the marker: each was an activity (validation on the shared queue).
LOCAL_STEPS = "local-steps"

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
# How every step runs, local or not; a step on a queue adds where and how long it waits.
STEP_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": START_TO_CLOSE,
    "schedule_to_close_timeout": SCHEDULE_TO_CLOSE,
    "retry_policy": RETRY_POLICY,
    # A cancelled step must have stopped before its compensation starts.
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}


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
    return "; ".join(
        f"{where}: {message}" if where else message
        for where, message, _ in validation_problems(error)
    )


def never_started(error: BaseException) -> bool:
    """True when an activity failed because no worker took it within schedule-to-start
    (Temporal does not retry that timeout: the task would wait on the same queue)."""
    cause: BaseException | None = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START


def on_another_host(error: ActivityError | ApplicationError) -> bool:
    # A local activity's failure reaches the workflow as it was raised, not wrapped.
    cause = error.cause if isinstance(error, ActivityError) else error
    return isinstance(cause, ApplicationError) and cause.type == ON_ANOTHER_HOST


def describe_failure(error: BaseException) -> str:
    """The innermost message of an activity failure, which is what a person can act on."""
    cause: BaseException | None = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError) and cause.message:
        return cause.message
    return str(cause) or type(cause).__name__


@workflow.defn(name=WORKFLOW_NAME)
class BotDeploymentWorkflow(DeploymentControls):
    def __init__(self) -> None:
        super().__init__()
        self._compensations: list[tuple[str, Compensation]] = []
        # Set once validation has resolved where the release runs: the host's own task
        # queue, and how long an activity may wait there for a worker.
        self._host: str | None = None
        self._host_queue: str | None = None
        self._host_start_timeout = SCHEDULE_TO_START
        # A deployment validated before hosts looked its host up once the upgrade reached it.
        self._host_sought = False
        # Short steps run as local activities (`LOCAL_STEPS`), until one finds its worker on
        # another host than the release's: the rest go to the host's queue.
        self._local_steps = False

    @workflow.run
    async def run(self, raw_request: Any) -> DeploymentResult:
        # Validated here, not by the data converter: a malformed input from any client
        # (even one that is not a JSON object) must end the deployment with a clear error
        # instead of failing workflow tasks forever.
        info = workflow.info()
        try:
            request = DeploymentInput.model_validate(raw_request)
        except ValidationError as error:
            message = "Invalid deployment input: " + describe_invalid_input(error)
            self._status.state = DeploymentState.FAILED
            self._status.last_error = message
            return self._result(DeploymentState.FAILED, error=message)
        self._status = DeploymentStatus(
            workflow_id=info.workflow_id,
            bot_name=request.bot_name,
            version=request.version,
            owner=request.owner,
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            environment=request.environment,
            started_at=workflow.now(),
            updated_at=workflow.now(),
            # A pause delivered with the start is handled before this method runs.
            state=DeploymentState.PAUSED if self._paused else DeploymentState.RUNNING,
        )
        release_ref = ReleaseRef(workflow_id=info.workflow_id, bot_name=request.bot_name)
        deployment_ref = DeploymentRef(
            workflow_id=info.workflow_id,
            bot_name=request.bot_name,
            version=request.version,
            restore_release=request.restore_release,
            environment=request.environment,
        )
        try:
            await self._enter(Step.VALIDATING)
            token_on_host = workflow.patched(TOKEN_ON_HOST)
            self._local_steps = token_on_host and workflow.patched(LOCAL_STEPS)
            validated = await self._validate(deployment_ref, token_on_host)
            target, version = await self._resolve(request, validated)
            if validated.promotion is not None:
                promoted = await self._check_promotion(validated.promotion)
                if promoted.image is not None and target is not None and target.image:
                    # The image staging runs, by digest: its tag may have moved since.
                    target = target.model_copy(update={"image": promoted.image})
            if token_on_host and target is not None:
                await self._check_token(target)

            await self._enter(Step.CREATING_RECORD)
            if target is None:
                # Validated before the upgrade (c107ed9), without a target.
                if not workflow.patched(f"{BEFORE_RECORDED_TARGETS}/create_bot_record"):
                    return await self._finish_as_before_recorded_targets(release_ref)
                token_on_host = workflow.patched(TOKEN_ON_HOST_REVALIDATED)
                validated = await self._validate(deployment_ref, token_on_host)
                target, version = await self._resolve(request, validated)
                if target is None:
                    raise ApplicationError(
                        f"Validation of {request.bot_name} named no target",
                        type="ValidationError",
                        non_retryable=True,
                    )
                if token_on_host:
                    await self._check_token(target)
            # Compensations are registered before their step runs: a step that failed
            # part-way may have done some of its work, and undoing is idempotent.
            self._on_rollback(DeploymentActivities.mark_release_rolled_back, release_ref)
            release = await self._short_step(
                DeploymentActivities.create_bot_record,
                CreateReleaseInput(workflow_id=info.workflow_id, version=version, target=target),
            )
            self._note_release(release)
            if validated.approval is not None:
                await self._await_approval(validated.approval)

            await self._enter(Step.DEPLOYING)
            self._on_rollback(DeploymentActivities.restore_command_snapshot, release_ref)
            self._on_rollback(DeploymentActivities.restore_previous_release, release_ref)
            self._on_rollback(DeploymentActivities.stop_new_release, release_ref)
            await self._call(DeploymentActivities.deploy_to_platform, release_ref)

            await self._enter(Step.HEALTH_CHECK)
            await self._call(DeploymentActivities.run_health_check, release_ref)

            await self._wait_while_paused()
            self._finishing = True
            await self._short_step(
                DeploymentActivities.finish_deployment,
                release_ref.model_copy(update={"host": self._host}),
            )
        except BaseException as error:
            cancelled = is_cancelled_exception(error)
            # A local step's failure arrives unwrapped: a timeout is a FailureError of its own.
            if not cancelled and not isinstance(error, FailureError):
                # A bug in this workflow: let the task fail and retry after a fix.
                raise
            refused = isinstance(error, ApplicationError) and error.type == APPROVAL_REFUSED
            final = DeploymentState.CANCELLED if cancelled or refused else DeploymentState.FAILED
            message = "Deployment cancelled" if cancelled else self._explain(error)
            self._status.last_error = None if cancelled or refused else message
            ended_at = (self._status.step, self._status.progress)
            await run_to_completion(self._roll_back())
            self._status.state = final
            return self._result(final, error=message, ended_at=ended_at)
        # Deployed: a cancellation that arrives from here on is too late to undo anything.
        self._complete_step()
        self._set_step(Step.DEPLOYED)
        self._status.state = DeploymentState.SUCCEEDED
        return self._result(DeploymentState.SUCCEEDED)

    async def _validate(self, ref: DeploymentRef, token_on_host: bool) -> ValidatedDeployment:
        """Validation by any worker (a local activity since `local-steps`, else on the
        shared queue): with the token and manifest (histories from before `token-on-host`),
        or without them, checked on the host (`_check_token`)."""
        ref = ref.model_copy(update={"checked_on_host": token_on_host})
        return await self._short_step(DeploymentActivities.validate_deployment, ref)

    async def _check_promotion(self, check: PromotionCheck) -> PromotedRelease:
        """On the source environment's host, which keeps the releases it compares."""
        options = self._step_options()
        options["task_queue"] = host_task_queue(workflow.info().task_queue, check.source_host)
        promoted = await workflow.execute_activity_method(
            DeploymentActivities.check_promotion, check, **options
        )
        raise_if_cancel_requested()
        return promoted

    async def _check_token(self, target: Target) -> None:
        """The bot's token and manifest, read on its host (where they are kept)."""
        await self._short_step(DeploymentActivities.check_bot_token, TokenCheck(target=target))

    async def _resolve(
        self, request: DeploymentInput, validated: ValidatedDeployment
    ) -> tuple[Target | None, str]:
        """The target and version to deploy, on the host validation resolved: a rollback's
        are recalled from the release it restores, on that release's host."""
        self._status.version = validated.version
        self._status.restored_release = validated.restored_release
        if validated.target is not None:
            self._status.environment = validated.target.environment
        self._use_host(validated.host, validated.host_start_timeout)
        target, version = validated.target, validated.version
        if validated.restored_release is not None and validated.host is not None:
            recalled = await self._call(
                DeploymentActivities.recall_release,
                RecallInput(
                    bot_name=validated.target.name if validated.target else request.bot_name,
                    release_number=validated.restored_release,
                ),
            )
            target, version = recalled.target, recalled.version
            self._status.version = version
        return target, version

    async def _finish_as_before_recorded_targets(self, ref: ReleaseRef) -> DeploymentResult:
        """The rest of a deployment that c107ed9 validated and went on with: the commands it
        issued then, in its order (its history replays), and after its history the same
        steps as today's activities on the release's host (the `before-recorded-targets/`
        patches). Its release has no recorded target: a step that needs one fails with
        that reason and the deployment rolls back."""
        try:
            self._on_rollback_as_before("mark_release_rolled_back", ref)
            release = await self._call_as_before("create_bot_record", ref)
            self._note_release(ReleaseInfo.model_validate(release))

            await self._enter(Step.DEPLOYING)
            self._on_rollback_as_before("restore_command_snapshot", ref)
            self._on_rollback_as_before("stop_new_release", ref)
            await self._call_as_before("deploy_to_platform", ref)

            await self._enter(Step.HEALTH_CHECK)
            await self._call_as_before("run_health_check", ref)

            await self._wait_while_paused()
            self._finishing = True
            await self._call_as_before("finish_deployment", ref)
        except BaseException as error:
            cancelled = is_cancelled_exception(error)
            if not cancelled and not isinstance(error, ActivityError | ApplicationError):
                raise
            final = DeploymentState.CANCELLED if cancelled else DeploymentState.FAILED
            message = "Deployment cancelled" if cancelled else self._explain(error)
            self._status.last_error = None if cancelled else message
            ended_at = (self._status.step, self._status.progress)
            await run_to_completion(self._roll_back())
            self._status.state = final
            await run_to_completion(self._record_outcome_as_before(ref, final, message))
            return self._result(final, error=message, ended_at=ended_at)
        self._complete_step()
        self._set_step(Step.DEPLOYED)
        self._status.state = DeploymentState.SUCCEEDED
        await run_to_completion(
            self._record_outcome_as_before(ref, DeploymentState.SUCCEEDED, None)
        )
        return self._result(DeploymentState.SUCCEEDED)

    def _on_rollback_as_before(self, name: str, ref: ReleaseRef) -> None:
        async def compensate() -> StepReport:
            report = await self._call_as_before(name, ref)
            # c107ed9's compensations returned nothing.
            if report is None:
                return StepReport(summary="Done.")
            return StepReport.model_validate(report)

        self._compensations.append((name, compensate))

    async def _record_outcome_as_before(
        self, ref: ReleaseRef, state: DeploymentState, error: str | None
    ) -> None:
        """c107ed9 recorded the outcome in an activity; the front end now reads it from
        Temporal, and no worker has that activity any more."""
        if workflow.patched(f"{BEFORE_RECORDED_TARGETS}/{RECORD_OUTCOME}"):
            return
        outcome = {"workflowId": ref.workflow_id, "state": state.value, "error": error}
        try:
            await self._call_as_before(RECORD_OUTCOME, outcome)
        except ActivityError as failure:
            workflow.logger.warning("Could not record the outcome: %s", describe_failure(failure))

    async def _call_as_before(self, name: str, argument: object) -> Any:
        """An activity of c107ed9's sequence, by name (its result is whatever that version
        returned). Replayed, it is the command that version issued; past the history, the
        release's host is resolved first (c107ed9 ran everything on the shared queue)."""
        if workflow.patched(f"{BEFORE_RECORDED_TARGETS}/{name}") and not self._host_sought:
            self._host_sought = True
            await self._find_host()
        result = await workflow.execute_activity(name, argument, **self._step_options())
        raise_if_cancel_requested()
        return result

    async def _find_host(self) -> None:
        """Validate again only to learn the release's host (its target is recorded nowhere);
        if that fails, the steps stay on the shared queue and say what is missing."""
        info = workflow.info()
        # Only the host is wanted: no token (the shared queue's worker may not hold it).
        ref = DeploymentRef(
            workflow_id=info.workflow_id,
            bot_name=self._status.bot_name,
            version="latest",
            checked_on_host=True,
        )
        try:
            validated = await self._call(DeploymentActivities.validate_deployment, ref)
        except ActivityError as error:
            workflow.logger.warning("No host for %s: %s", ref.bot_name, describe_failure(error))
            return
        self._use_host(validated.host, validated.host_start_timeout)

    def _result(
        self,
        state: DeploymentState,
        *,
        error: str | None = None,
        ended_at: tuple[str, int] | None = None,
    ) -> DeploymentResult:
        """The outcome, with the step where it ended and every compensation's outcome."""
        status = self._status
        step, progress = ended_at or (status.step, status.progress)
        return DeploymentResult(
            success=state is DeploymentState.SUCCEEDED,
            bot_id=status.bot_name if status.release_number is not None else None,
            error=error,
            state=state,
            release_number=status.release_number,
            previous_release_number=status.previous_release_number,
            restored_release=status.restored_release,
            approval=status.approval,
            host=status.host,
            environment=status.environment,
            version=status.version,
            step=step,
            progress=progress,
            compensations=list(status.compensations),
        )

    def _note_release(self, release: ReleaseInfo) -> None:
        self._status.release_number = release.release_number
        self._status.previous_release_number = release.previous_release_number

    async def _enter(self, step: Step) -> None:
        await self._wait_while_paused()
        self._complete_step()
        self._set_step(step)

    def _complete_step(self) -> None:
        current = self._status.step
        if current != Step.STARTING.value and current not in self._status.completed_steps:
            self._status.completed_steps.append(current)

    def _set_step(self, step: Step) -> None:
        self._status.step = step.value
        self._status.progress = step.progress
        self._status.updated_at = workflow.now()

    def _on_rollback(
        self,
        compensation: Callable[[DeploymentActivities, ReleaseRef], Awaitable[StepReport]],
        release_ref: ReleaseRef,
    ) -> None:
        async def compensate() -> StepReport:
            return await self._call(compensation, release_ref)

        self._compensations.append((compensation.__name__, compensate))

    async def _roll_back(self) -> None:
        self._paused = False
        self._status.state = DeploymentState.ROLLING_BACK
        self._status.step = Step.ROLLING_BACK.value
        self._status.updated_at = workflow.now()
        host_gone = False
        for name, compensate in reversed(self._compensations):
            if host_gone:
                # Each would wait the whole schedule-to-start for the same missing worker.
                self._status.compensations.append(
                    CompensationRecord(name=name, ok=False, detail=self._host_gone_detail())
                )
                continue
            try:
                report = await compensate()
                self._status.compensations.append(
                    CompensationRecord(name=name, ok=True, detail=report.summary)
                )
            except ActivityError as error:
                # One failed compensation must not stop the others from running.
                host_gone = never_started(error)
                detail = self._explain(error)
                workflow.logger.warning("Compensation %s failed: %s", name, detail)
                self._status.compensations.append(
                    CompensationRecord(name=name, ok=False, detail=detail)
                )
            self._status.updated_at = workflow.now()
        self._status.step = Step.ROLLED_BACK.value

    def _use_host(self, host: str | None, start_timeout: float | None) -> None:
        """From here on, activities run on the release's host (None: a history from before
        hosts, whose activities all ran on the shared queue)."""
        if host is None:
            return
        self._host = host
        self._host_queue = host_task_queue(workflow.info().task_queue, host)
        self._status.host = host
        if start_timeout is not None:
            self._host_start_timeout = timedelta(seconds=start_timeout)

    def _host_gone_detail(self) -> str:
        return f"not run: {host_gone_message(self._host or '?')}"

    def _explain(self, error: BaseException) -> str:
        if self._host is not None and never_started(error):
            return host_gone_message(self._host)
        return describe_failure(error)

    async def _call(
        self,
        activity: Callable[[DeploymentActivities, ArgT], Awaitable[ResultT]],
        argument: ArgT,
    ) -> ResultT:
        # Every activity after validation touches the release, on its host's queue.
        result = await workflow.execute_activity_method(activity, argument, **self._step_options())
        raise_if_cancel_requested()
        return result

    async def _short_step(
        self,
        activity: Callable[[DeploymentActivities, ArgT], Awaitable[ResultT]],
        argument: ArgT,
    ) -> ResultT:
        """A short step as a local activity of this task's worker (one that acts on the
        release refuses on another host's worker); else, and from then on, an activity on
        the host's queue."""
        if self._local_steps:
            try:
                result = await workflow.execute_local_activity_method(
                    activity, argument, **STEP_OPTIONS
                )
            except (ActivityError, ApplicationError) as error:
                if not on_another_host(error):
                    raise
                self._local_steps = False
            else:
                raise_if_cancel_requested()
                return result
        return await self._call(activity, argument)

    def _step_options(self) -> dict[str, Any]:
        """How every step and compensation runs: on the release's host queue, with retries."""
        return {
            **STEP_OPTIONS,
            "task_queue": self._host_queue,
            "schedule_to_start_timeout": self._host_start_timeout,
            "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        }
