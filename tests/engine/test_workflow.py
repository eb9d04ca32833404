"""botDeploymentWorkflow end to end: a real Temporal server, worker, SQLite and processes."""

from __future__ import annotations

import re
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
from workflows.activities import TARGETS_UNUSABLE, DeploymentActivities
from workflows.activity_models import CreateReleaseInput, DeploymentRef, ReleaseRef, TokenCheck
from workflows.models import DeploymentState

StartEngine = Callable[..., AbstractAsyncContextManager[Engine]]
# Activity names, taken from the methods themselves.
VALIDATE = DeploymentActivities.validate_deployment.__name__
CHECK_TOKEN = DeploymentActivities.check_bot_token.__name__
CREATE_RECORD = DeploymentActivities.create_bot_record.__name__
DEPLOY = DeploymentActivities.deploy_to_platform.__name__
HEALTH_CHECK = DeploymentActivities.run_health_check.__name__
FINISH = DeploymentActivities.finish_deployment.__name__
STOP_RELEASE = DeploymentActivities.stop_new_release.__name__
RESTORE_PREVIOUS = DeploymentActivities.restore_previous_release.__name__
RESTORE_COMMANDS = DeploymentActivities.restore_command_snapshot.__name__
MARK_ROLLED_BACK = DeploymentActivities.mark_release_rolled_back.__name__
ROLLBACK_ALL = [STOP_RELEASE, RESTORE_PREVIOUS, RESTORE_COMMANDS, MARK_ROLLED_BACK]
INPUTS: dict[str, type] = {
    VALIDATE: DeploymentRef,
    CHECK_TOKEN: TokenCheck,
    CREATE_RECORD: CreateReleaseInput,
}
# Where a deployment that failed in each activity says it ended (finishing is part of the
# health-check step).
ENDED_AT = {
    VALIDATE: ("Validating configuration", 10),
    CHECK_TOKEN: ("Validating configuration", 10),
    CREATE_RECORD: ("Creating bot record", 25),
    DEPLOY: ("Deploying to platform", 60),
    HEALTH_CHECK: ("Running health check", 85),
    FINISH: ("Running health check", 85),
}


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


def failing_after_work(
    name: str,
    *,
    retryable: bool = False,
    failing_attempts: int = 99,
    only_version: str | None = None,
) -> Callable[[DeploymentActivities], Callable[..., Any]]:
    """Replace an activity by one that does the real work, then fails (a Temporal failure)."""

    def wrap(activities: DeploymentActivities) -> Callable[..., Any]:
        real = getattr(activities, name)

        async def run_then_fail(argument: Any) -> Any:
            result = await real(argument)
            version = getattr(argument, "version", None)
            if version is None and isinstance(argument, ReleaseRef):
                release = await activities._storage.get_release_of_workflow(argument.workflow_id)
                version = release.version if release else None
            targeted = only_version is None or version == only_version
            if targeted and activity.info().attempt <= failing_attempts:
                raise ApplicationError(f"injected failure in {name}", non_retryable=not retryable)
            return result

        async def step(argument: Any) -> Any:
            return await run_then_fail(argument)

        # The replacement takes the same input model as the activity it stands in for.
        step.__annotations__ = {"argument": INPUTS.get(name, ReleaseRef), "return": Any}
        return activity.defn(name=name)(step)

    return wrap


async def test_success_reports_each_step_in_order(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        # The short steps are local activities, inside a workflow task that no query enters:
        # they are seen done once the steps that wait (deploy, health check) are held.
        for name in [DEPLOY, HEALTH_CHECK]:
            engine.gate.hold(name)
        workflow_id = await engine.deploy(version="1.0.0")
        observed = []
        for step_activity in [DEPLOY, HEALTH_CHECK]:
            await wait_until(
                lambda n=step_activity: _started(engine, n), what=f"{step_activity} to start"
            )
            status = await engine.deployments.status(workflow_id)
            observed.append((status.step, status.progress, status.state, status.completed_steps))
            engine.gate.release(step_activity)
        result = await engine.deployments.result(workflow_id)
        final = await engine.deployments.status(workflow_id)

        done_first = ["Validating configuration", "Creating bot record"]
        assert observed == [
            ("Deploying to platform", 60, DeploymentState.RUNNING, done_first),
            (
                "Running health check",
                85,
                DeploymentState.RUNNING,
                [*done_first, "Deploying to platform"],
            ),
        ]
        assert await engine.scheduled_activities(workflow_id) == [
            VALIDATE,
            CHECK_TOKEN,
            CREATE_RECORD,
            DEPLOY,
            HEALTH_CHECK,
            FINISH,
        ]
        assert (final.step, final.progress, final.state) == (
            "Deployed",
            100,
            DeploymentState.SUCCEEDED,
        )
        assert result.success and result.bot_id == "echo" and result.release_number == 1
        release = await engine.storage.get_release_of_workflow(workflow_id)
        assert release is not None and release.status == "active"
        # Deployment rows belong to the front end: the engine never writes one.
        assert await engine.storage.get_deployment(workflow_id) is None
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


async def _started(engine: Engine, name: str, times: int = 1) -> bool:
    return len(engine.attempts(name)) >= times


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
        (VALIDATE, []),
        (CHECK_TOKEN, []),
        (CREATE_RECORD, [MARK_ROLLED_BACK]),
        (DEPLOY, ROLLBACK_ALL),
        (HEALTH_CHECK, ROLLBACK_ALL),
        (FINISH, ROLLBACK_ALL),
    ],
)
async def test_failure_at_each_step_rolls_back_what_was_done(
    start_engine: StartEngine, failing: str, expected_rollback: list[str]
) -> None:
    async with start_engine(replace={failing: failing_after_work(failing)}) as engine:
        await global_commands(engine, replace_with=["before"])
        workflow_id = await engine.deploy(version="2.0.0")
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)
        scheduled = await engine.scheduled_activities(workflow_id)

        assert not result.success and result.state is DeploymentState.FAILED
        assert result.error == f"injected failure in {failing}"
        assert status.state is DeploymentState.FAILED
        assert status.last_error == result.error
        forward = scheduled[: scheduled.index(failing) + 1]
        assert scheduled == [*forward, *expected_rollback]
        assert [c.name for c in status.compensations] == expected_rollback
        assert all(c.ok for c in status.compensations)
        assert result.compensations == status.compensations
        assert (result.step, result.progress) == ENDED_AT[failing]
        assert engine.processes() == []
        release = await engine.storage.get_release_of_workflow(workflow_id)
        if failing in (VALIDATE, CHECK_TOKEN):
            assert release is None
        else:
            assert release is not None and release.status == "rolled_back"
        assert await global_commands(engine) == ["before"]


async def test_rollback_leaves_the_previous_release_running(start_engine: StartEngine) -> None:
    failing = failing_after_work(HEALTH_CHECK, only_version="2.0.0")
    async with start_engine(replace={HEALTH_CHECK: failing}) as engine:
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
        engine.gate.hold(FINISH)
        second = await engine.deploy(bot="overlap", version="1.1.0")
        await wait_until(
            lambda: _started(engine, FINISH, times=2),
            what="the second finish step to start",
        )
        assert len(engine.processes()) == 2
        engine.gate.release(FINISH)
        assert (await engine.deployments.result(second)).success
        [running] = engine.processes()
        assert "1.1.0" in running.cmdline()


async def test_cancel_during_health_check_rolls_back(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        engine.gate.hold(HEALTH_CHECK)
        workflow_id = await engine.deploy(version="3.0.0")
        await engine.status_when(
            workflow_id, lambda s: s.step == "Running health check", what="the health check"
        )
        await wait_until(lambda: _started(engine, HEALTH_CHECK), what="health check")
        assert len(engine.processes()) == 1
        await engine.deployments.cancel(workflow_id)
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)

        assert not result.success and result.state is DeploymentState.CANCELLED
        assert status.state is DeploymentState.CANCELLED
        assert [c.name for c in status.compensations] == ROLLBACK_ALL
        assert engine.processes() == []


async def test_pause_holds_the_next_step_and_cancel_while_paused_rolls_back(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        engine.gate.hold(DEPLOY)
        workflow_id = await engine.deploy(version="4.0.0")
        await wait_until(lambda: _started(engine, DEPLOY), what="deploy to start")
        await engine.deployments.pause(workflow_id)
        paused = await engine.status_when(
            workflow_id, lambda s: s.state is DeploymentState.PAUSED, what="paused"
        )
        assert paused.step == "Deploying to platform"
        engine.gate.release(DEPLOY)
        await wait_until(
            lambda: _completed_then_decided(engine, workflow_id, DEPLOY),
            what="the workflow to decide after the deploy completed",
        )
        assert HEALTH_CHECK not in await engine.scheduled_activities(workflow_id)
        assert (await engine.deployments.status(workflow_id)).state is DeploymentState.PAUSED

        await engine.deployments.cancel(workflow_id)
        result = await engine.deployments.result(workflow_id)
        assert result.state is DeploymentState.CANCELLED
        status = await engine.deployments.status(workflow_id)
        assert [c.name for c in status.compensations] == ROLLBACK_ALL
        assert engine.processes() == []


async def test_pause_then_resume_finishes(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        engine.gate.hold(HEALTH_CHECK)
        workflow_id = await engine.deploy(version="5.0.0")
        await wait_until(lambda: _started(engine, HEALTH_CHECK), what="health check")
        await engine.deployments.pause(workflow_id)
        await engine.status_when(workflow_id, lambda s: s.state is DeploymentState.PAUSED)
        engine.gate.release(HEALTH_CHECK)
        await wait_until(
            lambda: _completed_then_decided(engine, workflow_id, HEALTH_CHECK),
            what="the workflow to decide after the health check",
        )
        assert FINISH not in await engine.scheduled_activities(workflow_id)
        status = await engine.deployments.status(workflow_id)
        assert (status.state, status.step) == (DeploymentState.PAUSED, "Running health check")

        await engine.deployments.resume(workflow_id)
        result = await engine.deployments.result(workflow_id)
        assert result.success


async def _completed_then_decided(engine: Engine, workflow_id: str, name: str) -> bool:
    """True once the activity completed and a later workflow task has been completed."""
    from temporalio.api.enums.v1 import EventType

    history = await engine.client.get_workflow_handle(workflow_id).fetch_history()
    scheduled_ids = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == name
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
        # One attempt per call: Temporal's retry policy is the only retry layer.
        engine.double.inject_fault("GET", r"/users/@me$", status=500, times=1)
        workflow_id = await engine.deploy(version="6.0.0")
        result = await engine.deployments.result(workflow_id)
        assert result.success
        # The token is read on the bot's host, not by validation (any worker may run it).
        assert engine.attempts(VALIDATE) == [1]
        assert engine.attempts(CHECK_TOKEN) == [1, 2]


async def test_rejected_token_fails_at_once_without_retry(start_engine: StartEngine) -> None:
    async with start_engine() as engine:
        workflow_id = await engine.deploy(bot="rejected", version="1.0.0")
        result = await engine.deployments.result(workflow_id)
        assert not result.success
        assert result.error is not None and "rejected the bot token" in result.error
        assert engine.attempts(CHECK_TOKEN) == [1]
        assert await engine.scheduled_activities(workflow_id) == [VALIDATE, CHECK_TOKEN]


async def test_crashing_release_fails_the_health_check_saying_how_it_ended(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        workflow_id = await engine.deploy(bot="crashy", version="1.0.0")
        result = await engine.deployments.result(workflow_id)
        assert not result.success
        assert result.error is not None
        assert re.fullmatch(
            r"Release 1 of crashy is not running: the process exited with status 3 "
            r"after \d+\.\d s",
            result.error,
        ), result.error
        # Its output stays in its log, for those who may read it (workflows.release_logs).
        assert "boom" not in result.error
        assert engine.attempts(HEALTH_CHECK) == [1]


@pytest.mark.parametrize("failing", [CREATE_RECORD, DEPLOY])
async def test_activity_retried_after_doing_its_work_does_it_once(
    start_engine: StartEngine, failing: str
) -> None:
    wrapped = failing_after_work(failing, retryable=True, failing_attempts=1)
    async with start_engine(replace={failing: wrapped}) as engine:
        workflow_id = await engine.deploy(version="7.0.0")
        result = await engine.deployments.result(workflow_id)
        assert result.success
        assert engine.attempts(failing) == [1, 2]
        assert len(await engine.storage.list_releases("echo")) == 1
        assert len(engine.processes()) == 1


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"botType": "discord", "owner": "u"}, "botName"),
        # Names no other bot: the targets file declares those of every server.
        (
            {"botName": "ghost", "owner": "u"},
            "Unknown bot 'ghost': no bot of that name is declared in the targets file.",
        ),
        (
            {"botName": "echo", "owner": "u", "restoreRelease": 10**30},
            "Invalid deployment input: restoreRelease: Input should be less than or equal to",
        ),
        ({"botName": "echo", "owner": "u", "version": "1.0; rm -rf /"}, "not well formed"),
        ({"botName": "echo", "owner": "u", "version": "1.0.0\n"}, "not well formed"),
        ({"botName": "echo\n", "owner": "u"}, "botName: Bot name 'echo\\n' is not valid"),
        ({"botName": "e" * 2100, "owner": "u"}, "botName: String should have at most 64"),
        ({"botName": "echo", "owner": "u", "guildId": "abc"}, "guildId: 'abc' is not a Discord"),
        ({"botName": "echo", "owner": "<@&everyone> hi"}, "owner: must be a Discord user id"),
        ("echo", "Input should be a valid dictionary"),
        (["echo"], "Input should be a valid dictionary"),
    ],
)
async def test_bad_inputs_end_with_a_clear_error(
    start_engine: StartEngine, request_body: Any, expected: str
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
        assert final["owner"] == "user-123"


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
    assert started["activity"] == DEPLOY
    assert started["bot_name"] == "echo" and started["attempt"] == 1
    assert ECHO_TOKEN not in repr(captured)


async def test_cancel_during_a_rollback_lets_it_finish(start_engine: StartEngine) -> None:
    failing = failing_after_work(HEALTH_CHECK)
    async with start_engine(replace={HEALTH_CHECK: failing}) as engine:
        engine.gate.hold(RESTORE_COMMANDS)
        workflow_id = await engine.deploy(version="9.1.0")
        await wait_until(lambda: _started(engine, RESTORE_COMMANDS), what="the rollback")
        rolling = await engine.deployments.status(workflow_id)
        assert rolling.state is DeploymentState.ROLLING_BACK
        await engine.deployments.cancel(workflow_id)
        engine.gate.release(RESTORE_COMMANDS)
        result = await engine.deployments.result(workflow_id)
        status = await engine.deployments.status(workflow_id)
        assert result.state is DeploymentState.FAILED
        assert [c.name for c in status.compensations] == ROLLBACK_ALL
        assert engine.processes() == []


async def test_a_broken_targets_file_changes_nothing_for_a_deployment_in_flight(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    """The target travels with the deployment: an editor's half-saved targets file neither
    fails the deployment nor its rollback, and the previous release is really restored."""
    failing = failing_after_work(HEALTH_CHECK, only_version="2.0.0")
    async with start_engine(replace={HEALTH_CHECK: failing}) as engine:
        first = await engine.deploy(version="1.0.0")
        assert (await engine.deployments.result(first)).success
        engine.gate.hold(HEALTH_CHECK)
        engine.gate.hold(STOP_RELEASE)
        workflow_id = await engine.deploy(version="2.0.0")
        await wait_until(lambda: _started(engine, HEALTH_CHECK, times=2), what="health check")
        targets = tmp_path / "targets.toml"
        saved = targets.read_text()
        targets.write_text("[bots.echo\ncommand = [")  # half written
        engine.gate.release(HEALTH_CHECK)
        await wait_until(lambda: _started(engine, STOP_RELEASE), what="the rollback")
        targets.unlink()
        engine.gate.release(STOP_RELEASE)
        result = await engine.deployments.result(workflow_id)
        targets.write_text(saved)

        assert result.error == f"injected failure in {HEALTH_CHECK}"
        assert [(c.name, c.ok) for c in result.compensations] == [
            (name, True) for name in ROLLBACK_ALL
        ]
        details = [c.detail for c in result.compensations]
        assert "Release #2 stopped." in details
        assert "Previous release #1 restored." in details
        [running] = engine.processes()
        assert "1.0.0" in running.cmdline()


async def test_a_broken_targets_file_is_not_described_to_whoever_deploys(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    """Its problems name other servers' bots and the host's paths: the log has them."""
    async with start_engine() as engine:
        targets = tmp_path / "targets.toml"
        with targets.open("a", encoding="utf-8") as appended:
            appended.write('\n[bots.elsewhere]\nhealthy_after = "soon"\n')
        result = await engine.deployments.result(await engine.deploy())
        assert result.state is DeploymentState.FAILED
        assert result.error == TARGETS_UNUSABLE
        assert engine.processes() == []


async def test_a_first_deployment_that_fails_says_there_was_no_previous_release(
    start_engine: StartEngine,
) -> None:
    async with start_engine(replace={HEALTH_CHECK: failing_after_work(HEALTH_CHECK)}) as engine:
        workflow_id = await engine.deploy(version="1.0.0")
        result = await engine.deployments.result(workflow_id)
        restore = next(c for c in result.compensations if c.name == RESTORE_PREVIOUS)
        assert restore.ok and restore.detail == "There was no previous release."
        assert (result.step, result.progress) == ("Running health check", 85)


async def test_a_rollback_puts_an_earlier_release_back_as_a_new_release(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        for version in ("1.0.0", "1.1.0"):
            assert (await engine.deployments.result(await engine.deploy(version=version))).success
        rollback = await engine.deploy(restore_release=1)
        result = await engine.deployments.result(rollback)
        assert result.success and (result.release_number, result.restored_release) == (3, 1)
        [running] = engine.processes()
        assert "1.0.0" in running.cmdline()
        releases = {
            r.number: (r.version, r.status) for r in await engine.storage.list_releases("echo")
        }
        assert releases == {
            1: ("1.0.0", "superseded"),
            2: ("1.1.0", "superseded"),
            3: ("1.0.0", "active"),
        }
        status = await engine.deployments.status(rollback)
        assert (status.version, status.restored_release) == ("1.0.0", 1)


async def test_a_failing_rollback_rolls_back_to_what_ran(start_engine: StartEngine) -> None:
    failing = failing_after_work(HEALTH_CHECK, only_version="1.0.0", failing_attempts=99)
    async with start_engine(replace={HEALTH_CHECK: failing}) as engine:
        first = await engine.deploy(version="1.0.0")
        assert not (await engine.deployments.result(first)).success
        second = await engine.deploy(version="2.0.0")
        assert (await engine.deployments.result(second)).success
        rollback = await engine.deploy(restore_release=1)
        result = await engine.deployments.result(rollback)
        assert not result.success
        assert "Previous release #2 restored." in [c.detail for c in result.compensations]
        [running] = engine.processes()
        assert "2.0.0" in running.cmdline()


async def test_a_rollback_to_a_release_that_does_not_exist_fails_at_once(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        result = await engine.deployments.result(await engine.deploy(restore_release=7))
        assert not result.success and result.error == "echo has no release #7 to roll back to."
        assert engine.attempts(VALIDATE) == [1]


async def test_the_manifest_and_token_are_read_on_the_host_not_by_validation(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "commands.json"
    extra = (
        '\n[bots.unlisted]\ncommand = ["true"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
        f'commands = "{missing}"\n'
    )
    async with start_engine(extra_targets=extra) as engine:
        workflow_id = await engine.deploy(bot="unlisted", version="1.0.0")
        result = await engine.deployments.result(workflow_id)
        assert not result.success
        assert result.error is not None
        assert result.error.startswith(f"bots.unlisted.commands: cannot read {missing}"), (
            result.error
        )
        # Validation (any worker) passed; the host's check refused it, before any record.
        assert await engine.scheduled_activities(workflow_id) == [VALIDATE, CHECK_TOKEN]
        assert engine.attempts(CHECK_TOKEN) == [1]
        assert await engine.storage.get_release_of_workflow(workflow_id) is None
