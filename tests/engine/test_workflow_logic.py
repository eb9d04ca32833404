"""The workflow's own logic, fast: its activities replaced by stand-ins registered under the
same names (as Temporal's samples do), on the session's real Temporal server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from tests.engine.harness import wait_until
from workflows.activities import DeploymentActivities
from workflows.activity_models import (
    BotIdentity,
    CreateReleaseInput,
    DeploymentRef,
    ReleaseInfo,
    ReleaseRef,
    StepReport,
    TokenCheck,
    ValidatedDeployment,
)
from workflows.deployment_client import ControlRefused, DeploymentClient
from workflows.deployment_workflow import BotDeploymentWorkflow
from workflows.hosts import ON_ANOTHER_HOST, host_task_queue
from workflows.models import (
    APPROVE_UPDATE,
    PAUSE_UPDATE,
    RESUME_UPDATE,
    WORKFLOW_NAME,
    ApprovalRecord,
    DeploymentInput,
    DeploymentResult,
    DeploymentState,
    validate_owner,
)
from workflows.targets import ApprovalRule, Target
from workflows.worker import WORKFLOW_RUNNER, create_worker

A = DeploymentActivities
STEER_WAIT = timedelta(seconds=10)
OWNER, APPROVER = "111111111111111111", "222222222222222222"
TARGET = Target(name="echo", working_directory=Path("/srv"), command=["run"], token_env="T")


class StandIns:
    """Every activity, doing nothing but noting its call; `failing` ones raise."""

    def __init__(
        self,
        failing: set[str] | None = None,
        approval: ApprovalRule | None = None,
        host: str | None = None,
        host_start_timeout: float = 1.0,
    ) -> None:
        self.failing = failing or set()
        self.approval = approval
        # Validation names this host, whose queue no worker of the test polls.
        self.host = host
        self.host_start_timeout = host_start_timeout
        self.calls: list[str] = []
        # Steps held at their start until the test sets their event.
        self.gates: dict[str, asyncio.Event] = {}

    def _note(self, name: str) -> None:
        validation = name == A.validate_deployment.__name__
        if activity.info().is_local and self.host is not None and not validation:
            # As the real steps do: the test's worker is on no host validation names.
            raise ApplicationError("elsewhere", type=ON_ANOTHER_HOST, non_retryable=True)
        self.calls.append(name)
        if name in self.failing:
            raise ApplicationError(f"{name} broke", non_retryable=True)

    @activity.defn(name=A.validate_deployment.__name__)
    async def validate(self, ref: DeploymentRef) -> ValidatedDeployment:
        self._note(A.validate_deployment.__name__)
        return ValidatedDeployment(
            target=TARGET,
            version=ref.version,
            approval=self.approval,
            bot_user_id="1",
            application_id="2",
            host=self.host,
            host_start_timeout=self.host_start_timeout if self.host else None,
        )

    @activity.defn(name=A.check_bot_token.__name__)
    async def check_token(self, check: TokenCheck) -> BotIdentity:
        self._note(A.check_bot_token.__name__)
        return BotIdentity(bot_user_id="1", application_id="2")

    @activity.defn(name=A.create_bot_record.__name__)
    async def create(self, request: CreateReleaseInput) -> ReleaseInfo:
        self._note(A.create_bot_record.__name__)
        return ReleaseInfo(bot_id=request.target.name, release_number=4, previous_release_number=3)

    def _step(name: str) -> Any:
        @activity.defn(name=name)
        async def step(self: Any, ref: ReleaseRef) -> None:
            self._note(name)
            gate = self.gates.get(name)
            if gate is not None:
                await gate.wait()

        return step

    def _compensation(name: str) -> Any:
        @activity.defn(name=name)
        async def compensate(self: Any, ref: ReleaseRef) -> StepReport:
            self._note(name)
            return StepReport(summary=f"{name} done")

        return compensate

    deploy = _step(A.deploy_to_platform.__name__)
    health = _step(A.run_health_check.__name__)
    finish = _step(A.finish_deployment.__name__)
    stop_new = _compensation(A.stop_new_release.__name__)
    restore_previous = _compensation(A.restore_previous_release.__name__)
    restore_commands = _compensation(A.restore_command_snapshot.__name__)
    mark = _compensation(A.mark_release_rolled_back.__name__)

    def functions(self) -> list[Any]:
        return [
            self.validate,
            self.check_token,
            self.create,
            self.deploy,
            self.health,
            self.finish,
            self.stop_new,
            self.restore_previous,
            self.restore_commands,
            self.mark,
        ]


@pytest.fixture
async def run(temporal_client: Client) -> AsyncIterator[Any]:
    async def deploy(
        stand_ins: StandIns,
        request: Any = None,
        meanwhile: Callable[[DeploymentClient, str], Awaitable[None]] | None = None,
        start_signal: str | None = None,
    ) -> DeploymentResult:
        queue = f"logic-{uuid.uuid4().hex[:10]}"
        worker = create_worker(temporal_client, task_queue=queue, activities=stand_ins.functions())
        async with worker:
            client = DeploymentClient(temporal_client, queue)
            workflow_id = f"deploy-echo-{uuid.uuid4().int % 10**13}"
            if start_signal is not None:
                await temporal_client.start_workflow(
                    "botDeploymentWorkflow",
                    request,
                    id=workflow_id,
                    task_queue=queue,
                    start_signal=start_signal,
                )
            elif request is None:
                await client.start(
                    DeploymentInput(bot_name="echo", owner=OWNER, version="1.0.0"),
                    workflow_id=workflow_id,
                )
            else:
                await temporal_client.start_workflow(
                    "botDeploymentWorkflow", request, id=workflow_id, task_queue=queue
                )
            if meanwhile is not None:
                await meanwhile(client, workflow_id)
            return await client.result(workflow_id)

    yield deploy


FORWARD = [
    A.validate_deployment.__name__,
    A.check_bot_token.__name__,
    A.create_bot_record.__name__,
    A.deploy_to_platform.__name__,
    A.run_health_check.__name__,
    A.finish_deployment.__name__,
]
COMPENSATIONS = [
    A.stop_new_release.__name__,
    A.restore_previous_release.__name__,
    A.restore_command_snapshot.__name__,
    A.mark_release_rolled_back.__name__,
]


async def test_success_runs_each_step_once_and_reports_the_release(run: Any) -> None:
    stand_ins = StandIns()
    result = await run(stand_ins)
    assert stand_ins.calls == FORWARD
    assert result.success and result.state is DeploymentState.SUCCEEDED
    assert (result.release_number, result.previous_release_number) == (4, 3)
    assert (result.step, result.progress, result.compensations) == ("Deployed", 100, [])


async def test_a_host_without_a_worker_fails_clearly_before_recording_anything(
    run: Any,
) -> None:
    stand_ins = StandIns(host="nowhere")
    result = await run(stand_ins)
    assert stand_ins.calls == [A.validate_deployment.__name__]
    assert result.state is DeploymentState.FAILED
    assert result.error == "host nowhere has no running worker"
    # The token is checked on the host, before anything is recorded: nothing to undo.
    assert (result.host, result.step) == ("nowhere", "Validating configuration")
    assert result.compensations == []


async def test_a_host_gone_after_the_token_check_says_what_was_not_undone(
    run: Any, temporal_client: Client
) -> None:
    # The host's worker checks the token, then is gone before the release is recorded.
    stand_ins = StandIns(host="nowhere", host_start_timeout=3.0)

    async def host_checks_the_token_then_goes(client: DeploymentClient, workflow_id: str) -> None:
        shared_queue = (await client.handle(workflow_id).describe()).task_queue
        host_worker = Worker(
            temporal_client,
            task_queue=host_task_queue(shared_queue, "nowhere"),
            activities=[stand_ins.check_token],
        )

        async def checked() -> bool:
            return (await client.status(workflow_id)).step == "Creating bot record"

        async with host_worker:
            await wait_until(checked, what="the token check to pass")

    result = await run(stand_ins, meanwhile=host_checks_the_token_then_goes)
    assert stand_ins.calls == [A.validate_deployment.__name__, A.check_bot_token.__name__]
    assert result.error == "host nowhere has no running worker"
    assert (result.host, result.step) == ("nowhere", "Creating bot record")
    # The one compensation registered was tried on the host, which had no worker any more.
    assert [(c.name, c.ok, c.detail) for c in result.compensations] == [
        (A.mark_release_rolled_back.__name__, False, "host nowhere has no running worker")
    ]


@pytest.mark.parametrize(
    ("failing", "undone"),
    [
        (A.validate_deployment.__name__, []),
        (A.check_bot_token.__name__, []),
        (A.create_bot_record.__name__, COMPENSATIONS[-1:]),
        (A.deploy_to_platform.__name__, COMPENSATIONS),
        (A.finish_deployment.__name__, COMPENSATIONS),
    ],
)
async def test_compensations_registered_before_their_step_run_in_reverse(
    run: Any, failing: str, undone: list[str]
) -> None:
    stand_ins = StandIns(failing={failing})
    result = await run(stand_ins)
    assert stand_ins.calls == [*FORWARD[: FORWARD.index(failing) + 1], *undone]
    assert result.state is DeploymentState.FAILED and result.error == f"{failing} broke"
    assert [(c.name, c.ok, c.detail) for c in result.compensations] == [
        (name, True, f"{name} done") for name in undone
    ]


async def test_a_failing_compensation_is_reported_and_the_others_still_run(run: Any) -> None:
    broken = A.restore_previous_release.__name__
    stand_ins = StandIns(failing={A.run_health_check.__name__, broken})
    result = await run(stand_ins)
    assert stand_ins.calls[-4:] == COMPENSATIONS
    outcome = {c.name: (c.ok, c.detail) for c in result.compensations}
    assert outcome[broken] == (False, f"{broken} broke")
    assert all(ok for name, (ok, _) in outcome.items() if name != broken)
    assert (result.step, result.progress) == ("Running health check", 85)


@pytest.mark.parametrize("request_body", ["not an object", 42, {"botName": "echo"}])
async def test_input_that_is_not_a_deployment_ends_at_once(run: Any, request_body: Any) -> None:
    stand_ins = StandIns()
    result = await run(stand_ins, request=request_body)
    assert stand_ins.calls == []
    assert result.state is DeploymentState.FAILED
    assert result.error is not None and result.error.startswith("Invalid deployment input")


async def test_a_pause_delivered_with_the_start_shows_and_holds_before_the_first_step(
    run: Any,
) -> None:
    stand_ins = StandIns()

    async def resume_once_paused(client: DeploymentClient, workflow_id: str) -> None:
        async def paused() -> bool:
            return (await client.status(workflow_id)).state is DeploymentState.PAUSED

        await wait_until(paused, what="the paused state")
        assert stand_ins.calls == []
        await client.resume(workflow_id)

    request = {"botName": "echo", "owner": OWNER, "version": "1.0.0"}
    result = await run(stand_ins, request, resume_once_paused, start_signal="pause")
    assert result.success and stand_ins.calls == FORWARD


@pytest.mark.parametrize("number", [0, -1, 2**31, 2**63, 10**30, "many"])
async def test_a_release_number_out_of_range_is_refused_at_once(run: Any, number: Any) -> None:
    stand_ins = StandIns()
    request = {"botName": "echo", "owner": OWNER, "restoreRelease": number}
    result = await run(stand_ins, request=request)
    assert stand_ins.calls == []
    assert result.state is DeploymentState.FAILED
    assert result.error is not None
    assert result.error.startswith("Invalid deployment input: restoreRelease: "), result.error


async def awaiting_approval(client: DeploymentClient, workflow_id: str) -> None:
    async def reached() -> bool:
        return (await client.status(workflow_id)).state is DeploymentState.AWAITING_APPROVAL

    await wait_until(reached, what="the approval gate")


async def test_an_approval_lets_the_deployment_go_on_and_is_recorded(run: Any) -> None:
    stand_ins = StandIns(approval=ApprovalRule(role="ops", timeout=600))

    async def approve(client: DeploymentClient, workflow_id: str) -> None:
        await awaiting_approval(client, workflow_id)
        status = await client.status(workflow_id)
        assert status.approval_role == "ops" and status.approval_deadline is not None
        # The requester cannot approve their own deployment: ignored.
        await client.approve(workflow_id, OWNER)
        await client.approve(workflow_id, APPROVER)

    result = await run(stand_ins, meanwhile=approve)
    assert result.success and stand_ins.calls == FORWARD
    assert result.approval is not None
    assert (result.approval.decision, result.approval.by) == ("approved", APPROVER)


# Each is the owner, or not a Discord id: none may decide.
NOT_AN_APPROVER = [
    "0" + OWNER,
    "000" + OWNER,
    int(OWNER),
    f" {OWNER}\n",
    "user-123",
    "0" + APPROVER,
    str(2**64),
    2**64,
    -int(APPROVER),
    10**5000,
    True,
    None,
]


async def test_the_owner_in_any_spelling_and_what_is_no_discord_id_cannot_decide(
    run: Any, temporal_client: Client
) -> None:
    stand_ins = StandIns(approval=ApprovalRule(role="ops", timeout=600))
    started: list[str] = []

    async def decide(client: DeploymentClient, workflow_id: str) -> None:
        started.append(workflow_id)
        await awaiting_approval(client, workflow_id)
        handle = client.handle(workflow_id)
        for approver in NOT_AN_APPROVER:
            await handle.signal("reject", approver)
            await handle.signal("approve", approver)
        # Signals are handled in order: had any of the above counted, this one would not.
        await handle.signal("approve", int(APPROVER))

    result = await run(stand_ins, meanwhile=decide)
    assert result.success and stand_ins.calls == FORWARD
    assert result.approval is not None
    assert (result.approval.decision, result.approval.by) == ("approved", APPROVER)
    history = await temporal_client.get_workflow_handle(started[0]).fetch_history()
    await replayer(temporal_client, BotDeploymentWorkflow).replay_workflow(history)


def replayer(client: Client, workflow_class: type) -> Replayer:
    return Replayer(
        workflows=[workflow_class],
        workflow_runner=WORKFLOW_RUNNER,
        data_converter=client.data_converter,
    )


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class ApproverAsAnyLabel(BotDeploymentWorkflow):
    """The workflow as it was before approvers were Discord ids: any label other than the
    owner's exact text could decide."""

    @workflow.run
    async def run(self, raw_request: Any) -> DeploymentResult:
        return await super().run(raw_request)

    def _decide(self, decision: str, approver: Any) -> None:
        if self._status.state is not DeploymentState.AWAITING_APPROVAL:
            return
        if self._status.approval is not None:
            return
        approver = str(approver) if isinstance(approver, str | int) else ""
        try:
            validate_owner(approver)
        except ValueError:
            return
        if approver == self._status.owner:
            return
        self._status.approval = ApprovalRecord(decision=decision, by=approver, at=workflow.now())


async def test_histories_from_before_approvers_were_ids_replay_as_they_ran(
    temporal_client: Client,
) -> None:
    stand_ins = StandIns(approval=ApprovalRule(role="ops", timeout=600))
    queue = f"logic-{uuid.uuid4().hex[:10]}"
    workflow_id = f"deploy-echo-{uuid.uuid4().int % 10**13}"
    old_worker = Worker(
        temporal_client,
        task_queue=queue,
        workflows=[ApproverAsAnyLabel],
        activities=stand_ins.functions(),
    )
    async with old_worker:
        client = DeploymentClient(temporal_client, queue)
        await client.start(
            DeploymentInput(bot_name="echo", owner=OWNER, version="1.0.0"),
            workflow_id=workflow_id,
        )
        await awaiting_approval(client, workflow_id)
        await client.approve(workflow_id, "0" + OWNER)
        result = await client.result(workflow_id)
    assert result.success and result.approval is not None
    assert result.approval.by == "0" + OWNER
    history = await client.handle(workflow_id).fetch_history()
    # Refusing that approval now would wait at the gate where the history went on.
    await replayer(temporal_client, BotDeploymentWorkflow).replay_workflow(history)


async def test_a_rejection_ends_it_cancelled_with_the_reason(run: Any) -> None:
    stand_ins = StandIns(approval=ApprovalRule(role="ops", timeout=600))

    async def reject(client: DeploymentClient, workflow_id: str) -> None:
        await awaiting_approval(client, workflow_id)
        await client.reject(workflow_id, APPROVER)

    result = await run(stand_ins, meanwhile=reject)
    assert result.state is DeploymentState.CANCELLED
    assert result.error == f"Rejected by {APPROVER}"
    assert A.deploy_to_platform.__name__ not in stand_ins.calls
    assert [c.name for c in result.compensations] == COMPENSATIONS[-1:]


async def test_no_approval_in_time_ends_it_cancelled(run: Any) -> None:
    stand_ins = StandIns(approval=ApprovalRule(role="ops", timeout=1))
    result = await run(stand_ins)
    assert result.state is DeploymentState.CANCELLED
    assert result.error == "Not approved within 1s"
    assert result.approval is not None and result.approval.decision == "timed_out"


async def test_a_pause_while_awaiting_approval_is_refused_by_the_workflow(run: Any) -> None:
    stand_ins = StandIns(approval=ApprovalRule(role="ops", timeout=600))

    async def pause_then_approve(client: DeploymentClient, workflow_id: str) -> None:
        await awaiting_approval(client, workflow_id)
        with pytest.raises(ControlRefused) as refused:
            await client.steer(workflow_id, PAUSE_UPDATE, wait=STEER_WAIT)
        assert refused.value.state is DeploymentState.AWAITING_APPROVAL
        # The answer matches what the workflow reports afterwards.
        assert (await client.status(workflow_id)).state is DeploymentState.AWAITING_APPROVAL
        with pytest.raises(ControlRefused) as own:
            await client.steer(workflow_id, APPROVE_UPDATE, int(OWNER), wait=STEER_WAIT)
        assert own.value.reason == "requester"
        with pytest.raises(ControlRefused) as spelled:
            await client.steer(workflow_id, APPROVE_UPDATE, "0" + OWNER, wait=STEER_WAIT)
        assert spelled.value.reason == "not_a_user_id"
        status = await client.steer(workflow_id, APPROVE_UPDATE, int(APPROVER), wait=STEER_WAIT)
        assert status.approval is not None and status.approval.by == APPROVER

    result = await run(stand_ins, meanwhile=pause_then_approve)
    assert result.success and stand_ins.calls == FORWARD


async def test_a_pause_as_the_last_step_runs_never_leaves_it_half_finished(run: Any) -> None:
    stand_ins = StandIns()
    finishing = stand_ins.gates[A.finish_deployment.__name__] = asyncio.Event()
    seen: list[DeploymentState] = []

    async def pause_while_finishing(client: DeploymentClient, workflow_id: str) -> None:
        async def at_finish() -> bool:
            return A.finish_deployment.__name__ in stand_ins.calls

        await wait_until(at_finish, what="the last step")
        # The last step is a local activity: the workflow hears of the pause once it is done.
        # Before its end was recorded, the pause holds it before that step, which runs again
        # on resume; after, the pause is ignored (it was finishing).
        await client.pause(workflow_id)
        finishing.set()

        async def settled() -> bool:
            state = (await client.status(workflow_id)).state
            if state in (DeploymentState.PAUSED, DeploymentState.SUCCEEDED):
                seen.append(state)
            return bool(seen)

        await wait_until(settled, what="the pause to be heard")
        if seen == [DeploymentState.PAUSED]:
            await client.resume(workflow_id)

    result = await run(stand_ins, meanwhile=pause_while_finishing)
    assert result.state is DeploymentState.SUCCEEDED
    finished = stand_ins.calls.count(A.finish_deployment.__name__)
    assert (seen, finished) in (([DeploymentState.PAUSED], 2), ([DeploymentState.SUCCEEDED], 1))


async def test_a_pause_and_resume_by_update_say_what_the_workflow_did(run: Any) -> None:
    stand_ins = StandIns()
    health = stand_ins.gates[A.run_health_check.__name__] = asyncio.Event()

    async def pause_and_resume(client: DeploymentClient, workflow_id: str) -> None:
        async def at_health() -> bool:
            return A.run_health_check.__name__ in stand_ins.calls

        await wait_until(at_health, what="the health check")
        paused = await client.steer(workflow_id, PAUSE_UPDATE, wait=STEER_WAIT)
        assert paused.state is DeploymentState.PAUSED
        with pytest.raises(ControlRefused) as again:
            await client.steer(workflow_id, PAUSE_UPDATE, wait=STEER_WAIT)
        assert again.value.state is DeploymentState.PAUSED
        resumed = await client.steer(workflow_id, RESUME_UPDATE, wait=STEER_WAIT)
        assert resumed.state is DeploymentState.RUNNING
        # Still in its held health check, so the workflow is open to answer.
        with pytest.raises(ControlRefused) as not_paused:
            await client.steer(workflow_id, RESUME_UPDATE, wait=STEER_WAIT)
        assert not_paused.value.reason == "not_paused"
        health.set()

    result = await run(stand_ins, meanwhile=pause_and_resume)
    assert result.success


async def test_a_history_with_the_token_checked_on_the_host_replays(
    run: Any, temporal_client: Client
) -> None:
    stand_ins = StandIns()
    started: list[str] = []

    async def note_id(client: DeploymentClient, workflow_id: str) -> None:
        started.append(workflow_id)

    result = await run(stand_ins, meanwhile=note_id)
    assert result.success and stand_ins.calls == FORWARD
    history = await temporal_client.get_workflow_handle(started[0]).fetch_history()
    markers = [
        event.marker_recorded_event_attributes.SerializeToString()
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
    ]
    patches = [marker for marker in markers if b"core_patch" in marker]
    assert len(patches) == 2
    assert b'"token-on-host"' in patches[0] and b'"local-steps"' in patches[1]
    await replayer(temporal_client, BotDeploymentWorkflow).replay_workflow(history)
