"""Supervision, for real: the supervisor workflow on the session's Temporal server, real
release processes killed and crashing, a deployment terminated from the `temporal` CLI."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import psutil
from temporalio.client import Client

from shipcord.embedded_temporal import find_temporal_binary
from tests.engine.harness import Engine, wait_until
from workflows.models import DeploymentState
from workflows.runtimes.process import MARKER_VARIABLE
from workflows.supervision_rounds import SupervisionSettings

StartEngine = Callable[..., AbstractAsyncContextManager[Engine]]
FAST = SupervisionSettings(
    interval_seconds=0.3, restart_limit=2, restart_window_seconds=600, max_backoff_seconds=0.3
)
# Up long enough to pass its health check, then it crashes, every time.
FLAKY = """
[bots.flaky]
command = ["{python}", "-c", "import sys, time; time.sleep(1.5); sys.exit(7)"]
token_env = "SHIPCORD_TEST_ECHO_TOKEN"
healthy_after = 0.5
"""
# Stays in its health check until the test terminates its deployment.
HELD = """
[bots.held]
command = ["sleep", "600"]
token_env = "SHIPCORD_TEST_ECHO_TOKEN"
healthy_after = 0
health_url = "http://127.0.0.1:9/never"
health_timeout = 200
"""


def pids(engine: Engine) -> set[int]:
    return {process.pid for process in engine.processes()}


async def incidents(engine: Engine, kind: str) -> list[str]:
    return [i.message for i in await engine.storage.recent_incidents(since="") if i.kind == kind]


async def test_a_release_that_dies_is_started_again_and_told_once(
    start_engine: StartEngine,
) -> None:
    async with start_engine(supervision=FAST) as engine:
        workflow_id = await engine.deploy(version="1.0.0")
        assert (await engine.deployments.result(workflow_id)).success
        [first] = engine.processes()
        first.kill()

        async def replaced() -> bool:
            now = pids(engine)
            return len(now) == 1 and first.pid not in now

        await wait_until(replaced, what="the release to be started again")
        await wait_until(lambda: has(engine, "restarted", 1), what="the restart to be recorded")
        [message] = await incidents(engine, "restarted")
        assert "Release #1 of **echo** had stopped" in message
        release = await engine.storage.get_release_of_workflow(workflow_id)
        assert release is not None and release.status == "active"


async def test_every_active_release_comes_back_after_all_were_killed(
    start_engine: StartEngine,
) -> None:
    """What a restart of shipcord's container does to `process` releases."""
    async with start_engine(supervision=FAST) as engine:
        first = await engine.deploy(bot="echo", version="1.0.0")
        second = await engine.deploy(bot="overlap", version="1.0.0")
        for workflow_id in (first, second):
            assert (await engine.deployments.result(workflow_id)).success
        before = engine.processes()
        assert len(before) == 2
        for process in before:
            process.kill()
        psutil.wait_procs(before, timeout=5)

        async def both_back() -> bool:
            now = pids(engine)
            return len(now) == 2 and not now & {p.pid for p in before}

        await wait_until(both_back, what="both releases to run again")


async def test_a_crash_loop_is_stopped_and_told_once(start_engine: StartEngine) -> None:
    async with start_engine(supervision=FAST, extra_targets=FLAKY) as engine:
        workflow_id = await engine.deploy(bot="flaky", version="1.0.0")
        assert (await engine.deployments.result(workflow_id)).success
        await wait_until(lambda: has(engine, "crash_looping", 1), timeout=60, what="the crash loop")
        assert len(await incidents(engine, "restarted")) == FAST.restart_limit
        [message] = await incidents(engine, "crash_looping")
        assert "The bot is DOWN" in message and "status 7" in message
        await wait_until(lambda: nothing_runs(engine), what="the release to stay stopped")
        # Later rounds change nothing and tell nothing more.
        rounds = await supervisor_rounds(engine)
        await wait_until(
            lambda: more_rounds(engine, rounds, 3), what="three more supervision rounds"
        )
        assert len(await incidents(engine, "crash_looping")) == 1
        assert engine.processes() == []


async def test_a_terminated_deployment_leaves_no_copy_behind(
    start_engine: StartEngine, temporal_client: Client
) -> None:
    async with start_engine(supervision=FAST, extra_targets=HELD) as engine:
        workflow_id = await engine.deploy(bot="held", version="1.0.0")
        await engine.status_when(workflow_id, lambda s: s.step == "Running health check")
        await wait_until(lambda: runs(engine, 1), what="the release to start")
        terminate(temporal_client, workflow_id)
        await wait_until(lambda: nothing_runs(engine), what="the left-over release to stop")
        await wait_until(
            lambda: has(engine, "abandoned_stopped", 1), what="the incident to be recorded"
        )
        # The next deployment runs exactly one copy.
        again = await engine.deploy(bot="held", version="2.0.0")
        await engine.status_when(again, lambda s: s.step == "Running health check")
        await wait_until(lambda: runs(engine, 1), what="the new release")
        assert len(engine.processes()) == 1
        assert "held#2@" in engine.processes()[0].environ()["SHIPCORD_RELEASE"]
        status = await engine.deployments.status(again)
        assert status.state is DeploymentState.RUNNING


def terminate(client: Client, workflow_id: str) -> None:
    """As an operator would: `temporal workflow terminate` against the server."""
    result = subprocess.run(
        [
            str(find_temporal_binary()),
            "workflow",
            "terminate",
            "--workflow-id",
            workflow_id,
            "--reason",
            "operator",
            "--address",
            client.service_client.config.target_host,
            "--namespace",
            client.namespace,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


async def has(engine: Engine, kind: str, count: int) -> bool:
    return len(await incidents(engine, kind)) >= count


async def runs(engine: Engine, count: int) -> bool:
    return len(engine.processes()) == count


async def nothing_runs(engine: Engine) -> bool:
    return engine.processes() == []


async def supervisor_rounds(engine: Engine) -> int:
    [supervisor] = [w for w in engine.workflow_ids if w.startswith("shipcord-supervisor-")]
    history = await engine.client.get_workflow_handle(supervisor).fetch_history()
    return sum(
        1 for event in history.events if event.HasField("activity_task_completed_event_attributes")
    )


async def more_rounds(engine: Engine, seen: int, more: int) -> bool:
    return await supervisor_rounds(engine) >= seen + more


async def test_a_copy_started_after_the_releases_were_read_is_no_orphan(
    start_engine: StartEngine, temporal_client: Client
) -> None:
    # The reconciler reads the releases, then lists what runs: a deployment may record and
    # start its release in between. Its row is hidden from the read here (as if written
    # after it); the copy belongs to an open deployment, so it is left to that deployment.
    async with start_engine(supervision=FAST, extra_targets=HELD) as engine:
        workflow_id = await engine.deploy(bot="held", version="1.0.0")
        await engine.status_when(workflow_id, lambda s: s.step == "Running health check")
        await wait_until(lambda: runs(engine, 1), what="the release to start")
        release = await engine.storage.get_release_of_workflow(workflow_id)
        assert release is not None
        await engine.storage.set_release_status(release.id, "stopped")
        [copy] = engine.processes()
        seen = await supervisor_rounds(engine)
        await wait_until(lambda: more_rounds(engine, seen, 3), what="three more rounds")
        assert copy.is_running() and await incidents(engine, "orphan_stopped") == []
        # Once its deployment is gone, nothing wants it any more, and it stops.
        terminate(temporal_client, workflow_id)
        await wait_until(lambda: nothing_runs(engine), what="the left-over copy to stop")


async def test_a_release_that_cannot_be_supervised_leaves_the_others_supervised(
    start_engine: StartEngine,
) -> None:
    """Releases handled before the good one: one recorded without its target (as before
    targets were recorded with releases) and one whose target cannot be read. Each is told
    once and logged once; the good one is still restarted, and orphans still swept."""
    import structlog

    with structlog.testing.capture_logs() as captured:
        async with start_engine(supervision=FAST) as engine:
            broken = []
            for bot, target in (("overlap", None), ("crashy", '{"name": "crashy", "command"')):
                record = await engine.storage.create_release(
                    workflow_id=f"deploy-{bot}-1000",
                    bot_name=bot,
                    bot_type="discord",
                    version="0.9.0",
                    runtime="process",
                    target=target,  # type: ignore[arg-type]
                )
                await engine.storage.activate_release(record)
                broken.append(record)
            workflow_id = await engine.deploy(version="1.0.0")
            assert (await engine.deployments.result(workflow_id)).success
            [first] = engine.processes()
            first.kill()

            async def replaced() -> bool:
                now = pids(engine)
                return len(now) == 1 and first.pid not in now

            await wait_until(replaced, what="the good release to be started again")
            await wait_until(lambda: has(engine, "not_supervised", 2), what="both to be told")
            # The orphan sweep still runs too.
            installation = await engine.storage.installation_id()
            ghost = await asyncio.create_subprocess_exec(
                "sleep",
                "600",
                env={MARKER_VARIABLE: f"ghost#7@deploy-ghost-1~{installation}"},
                start_new_session=True,
            )
            try:
                await wait_until(
                    lambda: has(engine, "orphan_stopped", 1), what="the orphan to be stopped"
                )
                await asyncio.wait_for(ghost.wait(), timeout=10)
            finally:
                if ghost.returncode is None:
                    ghost.kill()
                    await ghost.wait()
            rounds = await supervisor_rounds(engine)
            await wait_until(lambda: more_rounds(engine, rounds, 3), what="three more rounds")
            told = await incidents(engine, "not_supervised")
            assert len(told) == 2
            assert any(
                "Release #1 of **overlap** cannot be supervised" in message
                and "recorded without its target" in message
                for message in told
            )
            assert any(
                "**crashy**" in message and "its recorded Target cannot be read" in message
                for message in told
            )
            assert await has(engine, "restarted", 1)
    logged = [entry for entry in captured if entry["event"] == "release_not_supervised"]
    assert sorted((entry["bot"], entry["release"]) for entry in logged) == [
        ("crashy", 1),
        ("overlap", 1),
    ]
