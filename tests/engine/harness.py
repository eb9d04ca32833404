"""Running the deployment engine for real in tests: Temporal, worker, SQLite, Discord double."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from storage import Storage
from tests.discord_double import DiscordDouble
from tests.ports import NEVER_HEALTHY
from workflows.activities import DeploymentActivities
from workflows.deployment_client import DeploymentClient, unix_ms
from workflows.hosts import DEFAULT_HOST, host_task_queue
from workflows.models import DeploymentInput, DeploymentStatus, deployment_workflow_id
from workflows.release_adoption import resume_releases_stopped_with_shipcord
from workflows.runtimes.process import MARKER_VARIABLE
from workflows.supervision_rounds import SupervisionActivities, SupervisionSettings
from workflows.supervisor_workflow import supervisor_workflow_id
from workflows.worker import (
    create_worker,
    deployment_activities,
    ensure_supervisor,
    host_supervision,
)

REPO = Path(__file__).resolve().parents[2]
ECHO_TOKEN_ENV = "SHIPCORD_TEST_ECHO_TOKEN"
BAD_TOKEN_ENV = "SHIPCORD_TEST_BAD_TOKEN"

TARGETS = f"""
[bots.echo]
command = ["{{python}}", "-m", "examples.echo_bot", "--release", "{{version}}"]
token_env = "{ECHO_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
commands = "{REPO / "examples" / "echo_bot" / "commands.json"}"
healthy_after = 0.3
health_timeout = 20

[bots.overlap]
command = ["{{python}}", "-m", "examples.echo_bot", "--release", "{{version}}"]
token_env = "{ECHO_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
strategy = "overlap"
healthy_after = 0.3
health_timeout = 20

[bots.rejected]
command = ["{{python}}", "-m", "examples.echo_bot"]
token_env = "{BAD_TOKEN_ENV}"

[bots.crashy]
command = ["{{python}}", "-c", "import sys; print('boom'); sys.exit(3)"]
token_env = "{ECHO_TOKEN_ENV}"
healthy_after = 1
{NEVER_HEALTHY}"""


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class ActivityGate(Interceptor):
    """Holds chosen activities at their start until the test lets them through.

    A Temporal worker interceptor: the workflow and activities run unchanged, the test
    only decides when a held activity may begin. Held activities heartbeat so that a
    cancellation still reaches them.
    """

    def __init__(self) -> None:
        self.held: dict[str, asyncio.Event] = {}
        self.started: list[tuple[str, int]] = []

    def hold(self, name: str) -> None:
        self.held[name] = asyncio.Event()

    def release(self, name: str) -> None:
        self.held[name].set()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _GatedActivity(next, self)


class _GatedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, gate: ActivityGate) -> None:
        super().__init__(next)
        self._gate = gate

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        self._gate.started.append((info.activity_type, info.attempt))
        event = self._gate.held.get(info.activity_type)
        while event is not None and not event.is_set():
            if not info.is_local:  # a local activity has no heartbeat
                activity.heartbeat("held by the test")
            try:
                await asyncio.wait_for(event.wait(), 0.2)
            except TimeoutError:
                pass
        return await super().execute_activity(input)


def activity_type(event: HistoryEvent) -> str | None:
    """The activity an event scheduled: a regular one, or a local one (by its marker)."""
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return event.activity_task_scheduled_event_attributes.activity_type.name
    marker = event.marker_recorded_event_attributes
    if event.HasField("marker_recorded_event_attributes") and marker.marker_name == (
        "core_local_activity"
    ):
        data = json.loads(marker.details["data"].payloads[0].data)
        return str(data["activity_type"])
    return None


@dataclass
class Engine:
    client: Client
    deployments: DeploymentClient
    storage: Storage
    double: DiscordDouble
    gate: ActivityGate
    data_dir: Path
    task_queue: str
    workflow_ids: list[str] = field(default_factory=list)

    async def deploy(
        self,
        bot: str = "echo",
        version: str = "1.0.0",
        owner: str = "42",
        restore_release: int | None = None,
        environment: str | None = None,
    ) -> str:
        """Start a deployment as another Temporal client would: straight on Temporal."""
        workflow_id = deployment_workflow_id(bot, unix_ms() + len(self.workflow_ids))
        request = DeploymentInput(
            bot_name=bot,
            version=version,
            owner=owner,
            restore_release=restore_release,
            environment=environment,
        )
        await self.deployments.start(request, workflow_id=workflow_id)
        self.workflow_ids.append(workflow_id)
        return workflow_id

    async def status_when(
        self,
        workflow_id: str,
        condition: Callable[[DeploymentStatus], bool],
        *,
        timeout: float = 30.0,
        what: str = "status",
    ) -> DeploymentStatus:
        seen: list[DeploymentStatus] = []

        async def check() -> bool:
            seen.append(await self.deployments.status(workflow_id))
            return condition(seen[-1])

        await wait_until(check, timeout=timeout, what=what)
        return seen[-1]

    async def scheduled_activities(self, workflow_id: str) -> list[str]:
        """Activity types in the order the workflow scheduled them, local ones included
        (from its history)."""
        history = await self.client.get_workflow_handle(workflow_id).fetch_history()
        return [name for name in map(activity_type, history.events) if name is not None]

    def processes(self) -> list[psutil.Process]:
        return release_processes(self.data_dir.parent)

    def attempts(self, name: str) -> list[int]:
        return [attempt for activity_type, attempt in self.gate.started if activity_type == name]


def release_processes(started_in: Path) -> list[psutil.Process]:
    """Live releases started by the process runtime from targets in `started_in`.

    Scoped by working directory so that tests running side by side never count, or kill,
    each other's releases.
    """
    found = []
    for process in psutil.process_iter():
        try:
            if (
                MARKER_VARIABLE in process.environ()
                and process.status() != psutil.STATUS_ZOMBIE
                and Path(process.cwd()).is_relative_to(started_in)
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def kill_release_processes(started_in: Path) -> None:
    processes = release_processes(started_in)
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=5)


@asynccontextmanager
async def running_engine(
    client: Client,
    double: DiscordDouble,
    tmp_path: Path,
    task_queue: str,
    *,
    replace: Mapping[str, Callable[[DeploymentActivities], Callable[..., Any]]] | None = None,
    extra_targets: str = "",
    supervision: SupervisionSettings | None = None,
) -> AsyncIterator[Engine]:
    """A worker on a fresh task queue; `replace` swaps activities, by name, for the test's own
    (registered under the same name, as Temporal's samples do)."""
    data_dir = tmp_path / "data"
    targets_file = tmp_path / "targets.toml"
    targets_file.write_text(TARGETS + extra_targets, encoding="utf-8")
    gate = ActivityGate()
    async with (
        await Storage.open(data_dir / "shipcord.db") as storage,
        deployment_activities(
            storage=storage,
            targets_file=targets_file,
            data_dir=data_dir,
            discord_api_base=double.api_base,
        ) as activities,
    ):
        # As `engine_worker` does before it polls.
        await resume_releases_stopped_with_shipcord(storage, activities.releases)
        functions = activities.functions()
        for name, wrap in (replace or {}).items():
            functions = [wrap(activities) if f.__name__ == name else f for f in functions]
        supervising = SupervisionActivities(storage=storage, releases=activities.releases)
        functions.append(supervising.reconcile)
        worker = create_worker(
            client, task_queue=task_queue, activities=functions, interceptors=[gate]
        )
        # The host's own queue, where every activity after validation runs.
        host_worker = create_worker(
            client,
            task_queue=host_task_queue(task_queue, DEFAULT_HOST),
            activities=functions,
            interceptors=[gate],
            with_workflows=False,
        )
        engine = Engine(
            client=client,
            deployments=DeploymentClient(client, task_queue),
            storage=storage,
            double=double,
            gate=gate,
            data_dir=data_dir,
            task_queue=task_queue,
        )
        try:
            async with worker, host_worker:
                if supervision is not None:
                    settings = host_supervision(
                        supervision, task_queue=task_queue, host=DEFAULT_HOST
                    )
                    await ensure_supervisor(client, task_queue=task_queue, settings=settings)
                    engine.workflow_ids.append(supervisor_workflow_id(task_queue, DEFAULT_HOST))
                yield engine
        finally:
            for workflow_id in engine.workflow_ids:
                try:
                    await client.get_workflow_handle(workflow_id).terminate("test over")
                except Exception:
                    pass
            kill_release_processes(tmp_path)
