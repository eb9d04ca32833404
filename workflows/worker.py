"""Building the Temporal worker that runs botDeploymentWorkflow and its activities."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from storage import Storage
from workflows.activities import DeploymentActivities
from workflows.discord_rest import DiscordRest
from workflows.heartbeat import AutoHeartbeat
from workflows.log_context import ActivityLogContext
from workflows.runtimes import DockerRuntime, ProcessRuntime, Runtime
from workflows.targets import TargetRegistry
from workflows.workflows import BotDeploymentWorkflow

# The sandbox runs the workflow's module afresh for every workflow it starts, and importing
# it imports the `workflows` package, whose models are pure declarations shared with the
# front end: passed through, they are built once per process instead of once per
# deployment (rebuilding their pydantic schemas was half of a busy worker's CPU time).
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows.models")
)
# Heartbeats carry cancellation to a running activity: send them promptly.
HEARTBEAT_THROTTLE = timedelta(seconds=1)
# On shutdown, activities in flight get this long to finish before they are cancelled and
# handed back to Temporal, which retries them on another worker.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
# Well inside the deploy step's 5-minute start-to-close timeout.
DOCKER_PULL_TIMEOUT = 120.0


def create_worker(
    client: Client,
    *,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    max_concurrent_activities: int = 50,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BotDeploymentWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=activities,
        max_concurrent_activities=max_concurrent_activities,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        interceptors=[ActivityLogContext(), AutoHeartbeat(), *interceptors],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


@asynccontextmanager
async def deployment_activities(
    *,
    storage: Storage,
    targets_file: Path,
    data_dir: Path,
    discord_api_base: str,
    runtimes: dict[str, Runtime] | None = None,
) -> AsyncIterator[DeploymentActivities]:
    """The activities with their dependencies: HTTP session, Discord client, runtimes."""
    async with aiohttp.ClientSession() as http:
        # Registered always: it touches the Docker socket only when a target uses it.
        docker = DockerRuntime(pull_timeout_seconds=DOCKER_PULL_TIMEOUT)
        try:
            yield DeploymentActivities(
                storage=storage,
                discord=DiscordRest(http, discord_api_base),
                runtimes=runtimes
                if runtimes is not None
                else {"process": ProcessRuntime(), "docker": docker},
                targets=TargetRegistry(targets_file),
                data_dir=data_dir,
                discord_api_base=discord_api_base,
                http=http,
            )
        finally:
            await docker.close()


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
) -> AsyncIterator[Worker]:
    """Run a worker for the deployment engine for the duration of the block."""
    async with deployment_activities(
        storage=storage,
        targets_file=targets_file,
        data_dir=data_dir,
        discord_api_base=discord_api_base,
        runtimes=runtimes,
    ) as activities:
        worker = create_worker(
            client,
            task_queue=task_queue,
            activities=activities.functions(),
            interceptors=interceptors,
        )
        async with worker:
            yield worker
