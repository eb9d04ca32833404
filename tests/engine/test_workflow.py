"""botDeploymentWorkflow end to end: a real Temporal server, worker, SQLite and processes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tests.engine.conftest import ECHO_TOKEN
from tests.engine.harness import Engine, wait_until
from workflows.activities import DeploymentActivities
from workflows.activity_names import ActivityName
from workflows.models import CreateRecordInput, DeploymentRef, DeploymentState

StartEngine = Callable[..., AbstractAsyncContextManager[Engine]]
ROLLBACK_ALL = [
    ActivityName.STOP_RELEASE.value,
    ActivityName.RESTORE_COMMANDS.value,
    ActivityName.MARK_ROLLED_BACK.value,
]


async def global_commands(engine: Engine, replace_with: list[str] | None = None) -> list[str]:
    """The echo application's global command names (after replacing them, if asked)."""
    headers = {"Authorization": f"Bot {ECHO_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{engine.double.api_base}/oauth2/applications/@me") as response:
            application = await response.json(content_type=None)
        url = f"{engine.double.api_base}/applications/{application['id']}/commands"
        if replace_with is not None:
            body = [{"name": name, "description": name, "type": 1} for name in replace_with]
            async with http.put(url, json=body) as response:
                assert response.status == 200
        async with http.get(url) as response:
            return sorted(command["name"] for command in await response.json(content_type=None))


def activity_named(activities: DeploymentActivities, name: ActivityName) -> Callable[..., Any]:
    for function in activities.functions():
        if function.__temporal_activity_definition.name == name.value:  # type: ignore[attr-defined]
            return function
    raise KeyError(name)


def failing_after_work(
    name: ActivityName,
    *,
    retryable: bool = False,
    failing_attempts: int = 99,
    only_version: str | None = None,
) -> Callable[[DeploymentActivities], Callable[..., Any]]:
    """Replace an activity by one that does the real work, then fails (a Temporal failure)."""

    def wrap(activities: DeploymentActivities) -> Callable[..., Any]:
        real = activity_named(activities, name)

        async def run_then_fail(argument: Any) -> Any:
            result = await real(argument)
            targeted = only_version is None or argument.version == only_version
            if targeted and activity.info().attempt <= failing_attempts:
                raise ApplicationError(
                    f"injected failure in {name.value}", non_retryable=not retryable
                )
            return result

        if name is ActivityName.CREATE_RECORD:

            @activity.defn(name=name.value)
            async def create(argument: CreateRecordInput) -> Any:
                return await run_then_fail(argument)

            return create

        @activity.defn(name=name.value)
        async def step(argument: DeploymentRef) -> Any:
            return await run_then_fail(argument)

        return step

    return wrap


async def test_success_reports_each_step_in_order(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        for name in ActivityName:
            engine.gate.hold(name.value)
        workflow_id = await engine.deploy(version="1.0.0")
        observed = []
        for step_activity in [
            ActivityName.VALIDATE,
            ActivityName.CREATE_RECORD,
            ActivityName.DEPLOY,
            ActivityName.HEALTH_CHECK,
        ]:
            await wait_until(
                lambda n=step_activity: _started(engine, n), what=f"{step_activity} to start"
            )
            status = await engine.deployments.status(workflow_id)
            observed.append((status.step, status.progress, status.state))
            engine.gate.release(step_activity.value)
        engine.gate.release(ActivityName.FINISH.value)
        engine.gate.release(ActivityName.RECORD_OUTCOME.value)
        result = await engine.deployments.result(workflow_id)
        final = await engine.deployments.status(workflow_id)

        assert observed == [
            ("Validating configuration", 10, DeploymentState.RUNNING),
            ("Creating bot record", 25, DeploymentState.RUNNING),
            ("Deploying to platform", 60, DeploymentState.RUNNING),
            ("Running health check", 85, DeploymentState.RUNNING),
        ]
        assert (final.step, final.progress, final.state) == (
            "Deployed",
            100,
            DeploymentState.SUCCEEDED,
        )
        assert result.success and result.bot_id == "echo" and result.release_number == 1
        release = await engine.storage.get_release_of_workflow(workflow_id)
        assert release is not None and release.status == "active"
        deployment = await engine.storage.get_deployment(workflow_id)
        assert deployment is not None and (deployment.state, deployment.is_open) == (
            "succeeded",
            False,
        )
        assert await global_commands(engine) == ["echo"]
        [process] = engine.processes()
        environment = process.environ()
        # A clean environment: its own token and port, the API base, nothing of shipcord's.
        assert set(environment) <= {
            "PATH",
            "DISCORD_TOKEN",
            "PORT",
            "DISCORD_API_BASE",
            "SHIPCORD_RELEASE",
        }
        assert environment["DISCORD_TOKEN"] == ECHO_TOKEN
        assert environment["DISCORD_API_BASE"] == engine.double.api_base
        assert "SHIPCORD_TEST_BAD_TOKEN" not in environment


async def _started(engine: Engine, name: ActivityName, times: int = 1) -> bool:
    return len(engine.attempts(name.value)) >= times


async def test_second_release_replaces_the_first(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        first = await engine.deploy(version="1.0.0")
        assert (await engine.deployments.result(first)).success
        [first_process] = engine.processes()
        second = await engine.deploy(version="1.1.0")
        result = await engine.deployments.result(second)
        assert result.success and result.release_number == 2
        releases = {r.number: r.status for r in await engine.storage.list_releases("echo")}
        assert releases == {1: "superseded", 2: "active"}
        [running] = engine.processes()
        assert running.pid != first_process.pid
        assert "1.1.0" in running.cmdline()


@pytest.mark.parametrize(
    ("failing", "expected_rollback"),
    [
        (ActivityName.VALIDATE, []),
        (ActivityName.CREATE_RECORD, [ActivityName.MARK_ROLLED_BACK.value]),
        (ActivityName.DEPLOY, ROLLBACK_ALL),
        (ActivityName.HEALTH_CHECK, ROLLBACK_ALL),
        (ActivityName.FINISH, ROLLBACK_ALL),
    ],
)
async def test_failure_at_each_step_rolls_back_what_was_done(
    start_engine: StartEngine, failing: ActivityName, expected_rollback: list[str]
) -> None:
    async with start_engine(replace={failing.value: failing_after_work(failing)}) as engine:
        await global_commands(engine, replace_with=["before"])
        workflow_id = await engine.deploy(version="2.0.0")
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)
        scheduled = await engine.scheduled_activities(workflow_id)

        assert not result.success and result.state is DeploymentState.FAILED
        assert result.error == f"injected failure in {failing.value}"
        assert status.state is DeploymentState.FAILED
        assert status.last_error == result.error
        forward = scheduled[: scheduled.index(failing.value) + 1]
        assert scheduled == [*forward, *expected_rollback, ActivityName.RECORD_OUTCOME.value]
        assert [c.name for c in status.compensations] == expected_rollback
        assert all(c.ok for c in status.compensations)
        assert engine.processes() == []
        release = await engine.storage.get_release_of_workflow(workflow_id)
        if failing is ActivityName.VALIDATE:
            assert release is None
        else:
            assert release is not None and release.status == "rolled_back"
        assert await global_commands(engine) == ["before"]


async def test_rollback_leaves_the_previous_release_running(start_engine: StartEngine) -> None:
    failing = failing_after_work(ActivityName.HEALTH_CHECK, only_version="2.0.0")
    async with start_engine(replace={ActivityName.HEALTH_CHECK.value: failing}) as engine:
        await global_commands(engine, replace_with=["before"])
        first = await engine.deploy(version="1.0.0")
        assert (await engine.deployments.result(first)).success
        second = await engine.deploy(version="2.0.0")
        result = await engine.deployments.result(second)

        assert not result.success
        [running] = engine.processes()
        assert "1.0.0" in running.cmdline()
        releases = {r.number: r.status for r in await engine.storage.list_releases("echo")}
        assert releases == {1: "active", 2: "rolled_back"}
        bot = await engine.storage.get_bot("echo")
        assert bot is not None and bot.active_release == 1
        assert await global_commands(engine) == ["echo"]


async def test_overlap_starts_the_new_release_before_stopping_the_old(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        first = await engine.deploy(bot="overlap", version="1.0.0")
        assert (await engine.deployments.result(first)).success
        engine.gate.hold(ActivityName.FINISH.value)
        second = await engine.deploy(bot="overlap", version="1.1.0")
        await wait_until(
            lambda: _started(engine, ActivityName.FINISH, times=2),
            what="the second finish step to start",
        )
        assert len(engine.processes()) == 2
        engine.gate.release(ActivityName.FINISH.value)
        assert (await engine.deployments.result(second)).success
        [running] = engine.processes()
        assert "1.1.0" in running.cmdline()


async def test_cancel_during_health_check_rolls_back(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        engine.gate.hold(ActivityName.HEALTH_CHECK.value)
        workflow_id = await engine.deploy(version="3.0.0")
        await engine.status_when(
            workflow_id, lambda s: s.step == "Running health check", what="the health check"
        )
        await wait_until(lambda: _started(engine, ActivityName.HEALTH_CHECK), what="health check")
        assert len(engine.processes()) == 1
        await engine.deployments.cancel(workflow_id)
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)

        assert not result.success and result.state is DeploymentState.CANCELLED
        assert status.state is DeploymentState.CANCELLED
        assert [c.name for c in status.compensations] == ROLLBACK_ALL
        assert engine.processes() == []
        deployment = await engine.storage.get_deployment(workflow_id)
        assert deployment is not None and deployment.state == "cancelled"
        assert not deployment.is_open


async def test_pause_holds_the_next_step_and_cancel_while_paused_rolls_back(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        engine.gate.hold(ActivityName.DEPLOY.value)
        workflow_id = await engine.deploy(version="4.0.0")
        await wait_until(lambda: _started(engine, ActivityName.DEPLOY), what="deploy to start")
        await engine.deployments.pause(workflow_id)
        paused = await engine.status_when(
            workflow_id, lambda s: s.state is DeploymentState.PAUSED, what="paused"
        )
        assert paused.step == "Deploying to platform"
        engine.gate.release(ActivityName.DEPLOY.value)
        await wait_until(
            lambda: _completed_then_decided(engine, workflow_id, ActivityName.DEPLOY),
            what="the workflow to decide after the deploy completed",
        )
        assert ActivityName.HEALTH_CHECK.value not in await engine.scheduled_activities(workflow_id)
        assert (await engine.deployments.status(workflow_id)).state is DeploymentState.PAUSED

        await engine.deployments.cancel(workflow_id)
        result = await engine.deployments.result(workflow_id)
        assert result.state is DeploymentState.CANCELLED
        status = await engine.deployments.status(workflow_id)
        assert [c.name for c in status.compensations] == ROLLBACK_ALL
        assert engine.processes() == []


async def test_pause_then_resume_finishes(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        engine.gate.hold(ActivityName.CREATE_RECORD.value)
        workflow_id = await engine.deploy(version="5.0.0")
        await wait_until(lambda: _started(engine, ActivityName.CREATE_RECORD), what="record")
        await engine.deployments.pause(workflow_id)
        await engine.status_when(workflow_id, lambda s: s.state is DeploymentState.PAUSED)
        engine.gate.release(ActivityName.CREATE_RECORD.value)
        await wait_until(
            lambda: _completed_then_decided(engine, workflow_id, ActivityName.CREATE_RECORD),
            what="the workflow to decide after the record was created",
        )
        assert ActivityName.DEPLOY.value not in await engine.scheduled_activities(workflow_id)
        status = await engine.deployments.status(workflow_id)
        assert (status.state, status.step) == (DeploymentState.PAUSED, "Creating bot record")

        await engine.deployments.resume(workflow_id)
        result = await engine.deployments.result(workflow_id)
        assert result.success


async def _completed_then_decided(engine: Engine, workflow_id: str, name: ActivityName) -> bool:
    """True once the activity completed and a later workflow task has been completed."""
    from temporalio.api.enums.v1 import EventType

    history = await engine.client.get_workflow_handle(workflow_id).fetch_history()
    scheduled_ids = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == name.value
    }
    completed_at = [
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and event.activity_task_completed_event_attributes.scheduled_event_id in scheduled_ids
    ]
    return bool(completed_at) and any(
        event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        and event.event_id > completed_at[0]
        for event in history.events
    )


async def test_transient_discord_error_succeeds_on_retry(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        # Three 500s exhaust the REST client's own tries: the activity fails once.
        engine.double.inject_fault("GET", r"/users/@me$", status=500, times=3)
        workflow_id = await engine.deploy(version="6.0.0")
        result = await engine.deployments.result(workflow_id)
        assert result.success
        assert engine.attempts(ActivityName.VALIDATE.value) == [1, 2]


async def test_rejected_token_fails_at_once_without_retry(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        workflow_id = await engine.deploy(bot="rejected", version="1.0.0")
        result = await engine.deployments.result(workflow_id)
        assert not result.success
        assert result.error is not None and "rejected the bot token" in result.error
        assert engine.attempts(ActivityName.VALIDATE.value) == [1]
        assert await engine.scheduled_activities(workflow_id) == [
            ActivityName.VALIDATE.value,
            ActivityName.RECORD_OUTCOME.value,
        ]


async def test_crashing_release_fails_the_health_check_with_its_output(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        workflow_id = await engine.deploy(bot="crashy", version="1.0.0")
        result = await engine.deployments.result(workflow_id)
        assert not result.success
        assert result.error is not None and "not running" in result.error
        assert "boom" in result.error
        assert engine.attempts(ActivityName.HEALTH_CHECK.value) == [1]


@pytest.mark.parametrize("failing", [ActivityName.CREATE_RECORD, ActivityName.DEPLOY])
async def test_activity_retried_after_doing_its_work_does_it_once(
    start_engine: StartEngine, failing: ActivityName
) -> None:
    wrapped = failing_after_work(failing, retryable=True, failing_attempts=1)
    async with start_engine(replace={failing.value: wrapped}) as engine:
        workflow_id = await engine.deploy(version="7.0.0")
        result = await engine.deployments.result(workflow_id)
        assert result.success
        assert engine.attempts(failing.value) == [1, 2]
        assert len(await engine.storage.list_releases("echo")) == 1
        assert len(engine.processes()) == 1


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"botType": "discord", "owner": "u"}, "botName"),
        ({"botName": "ghost", "owner": "u"}, "Unknown bot 'ghost'"),
        ({"botName": "echo", "owner": "u", "version": "1.0; rm -rf /"}, "not well formed"),
    ],
)
async def test_bad_inputs_end_with_a_clear_error(
    start_engine: StartEngine, request_body: dict[str, Any], expected: str
) -> None:
    async with start_engine() as engine:
        plain = await plain_json_client(engine)
        handle = await plain.start_workflow(
            "botDeploymentWorkflow",
            request_body,
            id=f"deploy-bad-{len(engine.workflow_ids)}-{engine.task_queue}",
            task_queue=engine.task_queue,
        )
        engine.workflow_ids.append(handle.id)
        result = await handle.result()
        assert result["success"] is False
        assert expected in result["error"]


async def plain_json_client(engine: Engine) -> Any:
    from temporalio.client import Client

    config = engine.client.config()
    return await Client.connect(
        engine.client.service_client.config.target_host, namespace=config["namespace"]
    )


async def test_a_client_without_shipcord_types_uses_the_guide_contract(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        plain = await plain_json_client(engine)
        workflow_id = "deploy-echo-1700000000000"
        handle = await plain.start_workflow(
            "botDeploymentWorkflow",
            {
                "botName": "echo",
                "botType": "discord",
                "config": {"token": "xxx-secret-from-chat"},
                "owner": "user-123",
            },
            id=workflow_id,
            task_queue=engine.task_queue,
        )
        engine.workflow_ids.append(workflow_id)
        status = await handle.query("status")
        assert set(status) >= {"step", "progress", "state", "botName", "owner"}
        assert status["state"] in {"running", "succeeded"}
        result = await handle.result()
        assert result["success"] is True and result["botId"] == "echo"
        final = await handle.query("status")
        assert (final["step"], final["progress"], final["state"]) == ("Deployed", 100, "succeeded")
        assert "xxx-secret-from-chat" not in repr(final) + repr(result)
        deployment = await engine.storage.get_deployment(workflow_id)
        assert deployment is not None and deployment.owner_id == "user-123"


async def test_activity_log_lines_carry_the_deployment(start_engine: StartEngine) -> None:
    import structlog

    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as captured:
        async with start_engine() as engine:
            workflow_id = await engine.deploy(version="8.0.0")
            assert (await engine.deployments.result(workflow_id)).success
    [started] = [entry for entry in captured if entry["event"] == "release started"]
    assert started["workflow_id"] == workflow_id
    assert started["activity"] == ActivityName.DEPLOY.value
    assert started["bot_name"] == "echo" and started["attempt"] == 1
    assert ECHO_TOKEN not in repr(captured)


async def test_cancel_after_the_last_step_changes_nothing(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        engine.gate.hold(ActivityName.RECORD_OUTCOME.value)
        workflow_id = await engine.deploy(version="9.0.0")
        await wait_until(
            lambda: _started(engine, ActivityName.RECORD_OUTCOME), what="the outcome record"
        )
        await engine.deployments.cancel(workflow_id)
        engine.gate.release(ActivityName.RECORD_OUTCOME.value)
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)
        assert result.success and status.state is DeploymentState.SUCCEEDED
        assert status.compensations == []
        assert len(engine.processes()) == 1


async def test_cancel_during_a_rollback_lets_it_finish(start_engine: StartEngine) -> None:
    failing = failing_after_work(ActivityName.HEALTH_CHECK)
    async with start_engine(replace={ActivityName.HEALTH_CHECK.value: failing}) as engine:
        engine.gate.hold(ActivityName.RESTORE_COMMANDS.value)
        workflow_id = await engine.deploy(version="9.1.0")
        await wait_until(
            lambda: _started(engine, ActivityName.RESTORE_COMMANDS), what="the rollback"
        )
        rolling = await engine.deployments.status(workflow_id)
        assert rolling.state is DeploymentState.ROLLING_BACK
        await engine.deployments.cancel(workflow_id)
        engine.gate.release(ActivityName.RESTORE_COMMANDS.value)
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)
        assert result.state is DeploymentState.FAILED
        assert [c.name for c in status.compensations] == ROLLBACK_ALL
        assert engine.processes() == []


async def test_target_removed_mid_deployment_still_stops_the_release(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    async with start_engine() as engine:
        engine.gate.hold(ActivityName.HEALTH_CHECK.value)
        workflow_id = await engine.deploy(version="10.0.0")
        await wait_until(lambda: _started(engine, ActivityName.HEALTH_CHECK), what="health")
        assert len(engine.processes()) == 1
        targets = tmp_path / "targets.toml"
        targets.write_text(targets.read_text().replace("[bots.echo]", "[bots.renamed]"))
        engine.gate.release(ActivityName.HEALTH_CHECK.value)
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)

        assert not result.success and result.error is not None
        assert "Unknown bot 'echo'" in result.error
        outcome = {c.name: c.ok for c in status.compensations}
        assert outcome == {
            ActivityName.STOP_RELEASE.value: True,
            ActivityName.RESTORE_COMMANDS.value: False,
            ActivityName.MARK_ROLLED_BACK.value: True,
        }
        assert engine.processes() == []
