"""Building the Temporal worker: botDeploymentWorkflow, the supervisor, their activities."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from storage import Storage
from workflows.activities import DeploymentActivities
from workflows.deployment_workflow import BotDeploymentWorkflow
from workflows.discord_rest import DiscordRest
from workflows.heartbeat import AutoHeartbeat
from workflows.hosts import DEFAULT_HOST, host_task_queue
from workflows.log_context import ActivityLogContext
from workflows.redacting_interceptor import RedactActivityFailures
from workflows.release_adoption import (
    adopt_earlier_releases,
    make_release_files_private,
    resume_releases_stopped_with_shipcord,
)
from workflows.release_logs import ReleaseLogs
from workflows.release_operator import ReleaseOperator
from workflows.release_reading import ReleaseReaderWorkflow, ReleaseReading
from workflows.runtimes import DockerRuntime, ProcessRuntime, Runtime
from workflows.runtimes.docker import DEFAULT_NETWORK
from workflows.supervision_rounds import SupervisionActivities, SupervisionSettings
from workflows.supervisor_workflow import ReleaseSupervisorWorkflow, supervisor_workflow_id
from workflows.targets import TargetRegistry, TargetsError, load_targets

log = structlog.get_logger(__name__)

# The sandbox runs the workflow's module afresh for every workflow it starts. The modules it
# imports are pure declarations (models, constants, activity signatures): passed through,
# they are built once per process instead of once per deployment, which halved a busy
# worker's CPU time and then cut it by another eighth. The sandbox's restrictions (clocks,
# randomness, I/O) still hold for the workflow code.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)
# Heartbeats carry cancellation to a running activity: send them promptly.
HEARTBEAT_THROTTLE = timedelta(seconds=1)
# On shutdown, activities in flight get this long to finish before they are cancelled and
# handed back to Temporal, which retries them on another worker. Well below the 10 s that
# `docker stop` waits, with the rest of shutdown (shipcord.app).
GRACEFUL_SHUTDOWN = timedelta(seconds=4)
# Well inside the deploy step's 5-minute start-to-close timeout.
DOCKER_PULL_TIMEOUT = 120.0


def create_worker(
    client: Client,
    *,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    max_concurrent_activities: int = 50,
    interceptors: Sequence[Interceptor] = (),
    with_workflows: bool = True,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=(
            [BotDeploymentWorkflow, ReleaseSupervisorWorkflow, ReleaseReaderWorkflow]
            if with_workflows
            else []
        ),
        workflow_runner=WORKFLOW_RUNNER,
        activities=activities,
        max_concurrent_activities=max_concurrent_activities,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        # Outermost first: whatever any other layer raises is redacted on its way out.
        interceptors=[
            RedactActivityFailures(),
            ActivityLogContext(),
            AutoHeartbeat(),
            *interceptors,
        ],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


def register_target_tokens(targets_file: Path) -> None:
    """Read every target's token once, so the redactor knows them all before any release
    runs (each later read registers a rotated token too). A broken targets file is left to
    the activities, which say what is wrong with it."""
    try:
        targets = load_targets(targets_file)
    except TargetsError:
        return
    for target in targets.bots.values():
        target.read_token()


@asynccontextmanager
async def release_operator(
    *,
    storage: Storage,
    data_dir: Path,
    discord_api_base: str,
    runtimes: dict[str, Runtime] | None = None,
    docker_network: str = DEFAULT_NETWORK,
) -> AsyncIterator[ReleaseOperator]:
    # Registered always: it touches the Docker socket only when a target uses it.
    docker = DockerRuntime(pull_timeout_seconds=DOCKER_PULL_TIMEOUT, network=docker_network)
    try:
        yield ReleaseOperator(
            storage=storage,
            runtimes=runtimes
            if runtimes is not None
            else {"process": ProcessRuntime(), "docker": docker},
            data_dir=data_dir,
            discord_api_base=discord_api_base,
            installation=await storage.installation_id(),
        )
    finally:
        await docker.close()


@asynccontextmanager
async def deployment_activities(
    *,
    storage: Storage,
    targets_file: Path,
    data_dir: Path,
    discord_api_base: str,
    runtimes: dict[str, Runtime] | None = None,
    docker_network: str = DEFAULT_NETWORK,
    default_host: str = DEFAULT_HOST,
    host_start_timeout: float = 60.0,
    host: str | None = None,
) -> AsyncIterator[DeploymentActivities]:
    """The activities with their dependencies: HTTP session, Discord client, runtimes."""
    register_target_tokens(targets_file)
    async with (
        aiohttp.ClientSession() as http,
        release_operator(
            storage=storage,
            data_dir=data_dir,
            discord_api_base=discord_api_base,
            runtimes=runtimes,
            docker_network=docker_network,
        ) as releases,
    ):
        yield DeploymentActivities(
            storage=storage,
            discord=DiscordRest(http, discord_api_base),
            releases=releases,
            targets=TargetRegistry(targets_file),
            http=http,
            default_host=default_host,
            host_start_timeout=host_start_timeout,
            host=host,
        )


async def ensure_supervisor(
    client: Client, *, task_queue: str, settings: SupervisionSettings
) -> None:
    """Start the supervisor of the settings' host, or keep the one that runs."""
    if settings.host is not None:
        await retire_supervisor_before_hosts(client, task_queue)
    # Both arguments, always: the SDK decodes by the signature only when the counts match.
    await client.start_workflow(
        ReleaseSupervisorWorkflow.run,
        args=[settings, []],
        id=supervisor_workflow_id(task_queue, settings.host),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def retire_supervisor_before_hosts(client: Client, task_queue: str) -> None:
    """The one supervisor of an installation from before hosts would wait forever for a
    round on the shared queue, where no worker takes rounds any more: end it."""
    handle = client.get_workflow_handle(supervisor_workflow_id(task_queue))
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("replaced by one supervisor per host")
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise


async def prepare_host_releases(
    storage: Storage, *, targets_file: Path, data_dir: Path, host: str
) -> None:
    changed = make_release_files_private(data_dir)
    if changed:
        log.info("release_files_made_private", files=changed)
    await adopt_earlier_releases(storage, targets_file=targets_file, host=host)


def host_supervision(
    settings: SupervisionSettings, *, task_queue: str, host: str
) -> SupervisionSettings:
    return settings.model_copy(
        update={"host": host, "task_queue": host_task_queue(task_queue, host)}
    )


@asynccontextmanager
async def engine_worker(
    client: Client,
    *,
    task_queue: str,
    storage: Storage,
    targets_file: Path,
    data_dir: Path,
    discord_api_base: str,
    runtimes: dict[str, Runtime] | None = None,
    interceptors: Sequence[Interceptor] = (),
    docker_network: str = DEFAULT_NETWORK,
    supervision: SupervisionSettings | None = None,
    host: str = DEFAULT_HOST,
    default_host: str | None = None,
    host_start_timeout: float = 60.0,
) -> AsyncIterator[Worker]:
    """Run a worker for the deployment engine on `host` for the duration of the block: the
    shared queue's worker (yielded) and the host queue's beside it.

    Before it polls, what an older shipcord left in the host's data folder is brought up to
    today's rules: release files are made 0600, and releases recorded without their target
    are adopted; then its process releases that stopped while no shipcord ran are started
    again (`workflows.release_adoption`)."""
    await prepare_host_releases(storage, targets_file=targets_file, data_dir=data_dir, host=host)
    async with deployment_activities(
        storage=storage,
        targets_file=targets_file,
        data_dir=data_dir,
        discord_api_base=discord_api_base,
        runtimes=runtimes,
        docker_network=docker_network,
        default_host=default_host or host,
        host_start_timeout=host_start_timeout,
        host=host,
    ) as activities:
        await resume_releases_stopped_with_shipcord(storage, activities.releases)
        supervising = SupervisionActivities(storage=storage, releases=activities.releases)
        # The runtimes are the activities': reading a log opens no client of its own.
        reading = ReleaseReading(storage, ReleaseLogs(storage, activities.releases.runtimes))
        shared = activities.shared_functions()
        if host == (default_host or host):
            # Among them the short steps, which the workflow runs as local activities.
            shared += activities.before_hosts_functions()
        else:
            shared += activities.local_step_functions()
        worker = create_worker(
            client,
            task_queue=task_queue,
            activities=shared,
            interceptors=interceptors,
        )
        host_worker = create_worker(
            client,
            task_queue=host_task_queue(task_queue, host),
            activities=[
                *activities.host_functions(),
                supervising.reconcile,
                reading.read_host_releases,
            ],
            interceptors=interceptors,
            with_workflows=False,
        )
        async with worker, host_worker:
            if supervision is not None:
                await ensure_supervisor(
                    client,
                    task_queue=task_queue,
                    settings=host_supervision(supervision, task_queue=task_queue, host=host),
                )
            yield worker
