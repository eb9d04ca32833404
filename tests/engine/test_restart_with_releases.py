"""A restart of shipcord that takes its process releases down with it (its container
stopped) changes nothing: the releases start again and a deployment in flight carries on."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from tests.engine.harness import Engine
from workflows.promotion import CRASH_KINDS

StartEngine = Callable[..., AbstractAsyncContextManager[Engine]]
HEALTH_CHECK = "run_health_check"


async def test_a_deployment_in_its_health_check_finishes_after_shipcord_and_its_release_died(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        live = await engine.deploy("overlap", "1.0.0")
        assert (await engine.deployments.result(live)).success
        engine.gate.hold(HEALTH_CHECK)
        in_flight = await engine.deploy("echo", "1.0.0")
        await engine.status_when(in_flight, lambda s: s.step == "Running health check")
        before = {process.pid for process in engine.processes()}
        # Leaving the block stops the worker and kills every release, as `docker stop`
        # does to shipcord's container; the workflows are left running.
        engine.workflow_ids.clear()
    async with start_engine() as engine:
        engine.workflow_ids.extend([live, in_flight])
        result = await engine.deployments.result(in_flight)
        assert result.success, result.error
        running = {process.pid for process in engine.processes()}
        assert len(running) == 2 and running.isdisjoint(before)
        releases = await engine.storage.list_releases("overlap")
        assert [release.status for release in releases] == ["active"]
        crashes = [
            incident
            for bot in ("echo", "overlap")
            for incident in await engine.storage.incidents_of(bot, kinds=CRASH_KINDS, since="0")
        ]
        assert crashes == []
