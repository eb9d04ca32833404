"""The activities of botDeploymentWorkflow: all of the deployment's I/O.

Activities own releases (what runs, how to stop or restart it); deployment rows belong to
the front end, which learns outcomes from Temporal. The targets file is read once per
deployment, by `validate_deployment`; every later step works from the target recorded
with the release, so an edited or broken targets file never strands a rollback.

Each activity is idempotent: Temporal may run one again after it already did its work (a
retry, or a worker that crashed before reporting), and the second run changes nothing
more. Errors that no retry can heal are raised non-retryable; everything else is left to
Temporal's retry policy, the one retry layer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from storage import ReleaseRecord, ReleasesInFlight, Storage
from workflows.activity_models import (
    CreateReleaseInput,
    DeploymentRef,
    ReleaseInfo,
    ReleaseRef,
    StepReport,
    ValidatedDeployment,
)
from workflows.discord_rest import DiscordApiError, DiscordRest, TokenRejected
from workflows.models import validate_version
from workflows.releases import Release
from workflows.runtimes import (
    PermanentRuntimeError,
    ReleaseHandle,
    ReleaseSpec,
    Runtime,
    RuntimeError_,
    reachable_url,
)
from workflows.targets import Target, TargetRegistry, TargetsError, UnknownTarget

log = structlog.get_logger(__name__)
HEALTH_POLL_SECONDS = 0.25


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="ValidationError", non_retryable=True)


def heartbeat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def discord_errors() -> Iterator[None]:
    """Discord's answer as Temporal should retry it: at its pace, or not at all."""
    try:
        yield
    except DiscordApiError as error:
        raise ApplicationError(
            str(error),
            type="TokenRejected" if isinstance(error, TokenRejected) else "DiscordApiError",
            non_retryable=error.permanent,
            next_retry_delay=(
                timedelta(seconds=error.retry_after) if error.retry_after is not None else None
            ),
        ) from None


@contextmanager
def runtime_errors() -> Iterator[None]:
    """A runtime that failed (the engine unreachable, a stop that hung): Temporal retries,
    unless the runtime says no retry can heal it."""
    try:
        yield
    except RuntimeError_ as error:
        raise ApplicationError(
            str(error),
            type="RuntimeError",
            non_retryable=isinstance(error, PermanentRuntimeError),
        ) from None


class DeploymentActivities:
    """The activities, with their dependencies given once (one instance per worker)."""

    def __init__(
        self,
        *,
        storage: Storage,
        discord: DiscordRest,
        runtimes: dict[str, Runtime],
        targets: TargetRegistry,
        data_dir: Path,
        discord_api_base: str,
        http: aiohttp.ClientSession,
    ) -> None:
        self._storage = storage
        self._discord = discord
        self._runtimes = runtimes
        self._targets = targets
        self._data_dir = data_dir
        self._discord_api_base = discord_api_base
        self._http = http

    def functions(self) -> list[Callable[..., Any]]:
        """Every activity, as registered with a worker."""
        return [
            self.validate_deployment,
            self.create_bot_record,
            self.deploy_to_platform,
            self.run_health_check,
            self.finish_deployment,
            self.stop_new_release,
            self.restore_previous_release,
            self.restore_command_snapshot,
            self.mark_release_rolled_back,
        ]

    # Forward steps ----------------------------------------------------------------------

    @activity.defn
    async def validate_deployment(self, ref: DeploymentRef) -> ValidatedDeployment:
        """The only read of the targets file: the target travels with the deployment."""
        try:
            target = self._targets.get(ref.bot_name)
            validate_version(ref.version)
            target.load_command_manifest()
        except (UnknownTarget, ValueError) as error:
            raise invalid(str(error)) from None
        self._runtime(target.runtime)
        token = self._token(target)
        with discord_errors():
            user = await self._discord.current_user(token)
            application = await self._discord.current_application(token)
        return ValidatedDeployment(
            target=target, bot_user_id=str(user["id"]), application_id=str(application["id"])
        )

    @activity.defn
    async def create_bot_record(self, request: CreateReleaseInput) -> ReleaseInfo:
        target = request.target
        while True:
            try:
                release = await self._storage.create_release(
                    workflow_id=request.workflow_id,
                    bot_name=target.name,
                    bot_type=target.type,
                    version=request.version,
                    runtime=target.runtime,
                    target=target.model_dump_json(),
                )
                break
            except ReleasesInFlight as in_flight:
                for other in in_flight.releases:
                    await self._retire_if_abandoned(other)
        return ReleaseInfo(
            bot_id=release.bot_name,
            release_number=release.number,
            previous_release_number=release.previous_number,
        )

    @activity.defn
    async def deploy_to_platform(self, ref: ReleaseRef) -> None:
        release = await self._release(ref)
        target = self._recorded_target(release)
        token = self._token(target)
        heartbeat("applying slash commands")
        await self._apply_command_manifest(ref.workflow_id, target, token)
        if target.strategy == "replace":
            heartbeat("stopping the previous release")
            await self._stop_previous(release, status="stopped")
        heartbeat("starting the new release")
        await self._ensure_running(release, status="running")

    @activity.defn
    async def run_health_check(self, ref: ReleaseRef) -> None:
        release = await self._release(ref)
        target = self._recorded_target(release)
        if release.handle is None:
            raise ApplicationError(f"{release.name} was never started", type="MissingRecord")
        handle = release.handle
        runtime = self._runtime(handle.runtime)
        health_url = target.render_health_url(port=handle.port)
        url = reachable_url(health_url, handle) if health_url is not None else None
        # Uptime is measured here, on the monotonic clock: the process start time that
        # psutil reports is derived from boot time and can disagree with the wall clock.
        watching_since = time.monotonic()
        deadline = watching_since + target.health_timeout
        last_problem = "not checked yet"
        while True:
            with runtime_errors():
                running = await runtime.is_running(handle)
            if not running:
                # How it ended, never what it printed: its output stays in its log.
                reason = await runtime.exit_description(handle)
                raise ApplicationError(
                    f"Release {release.record.number} of {release.record.bot_name} is not "
                    f"running: {reason}",
                    type="ReleaseExited",
                    non_retryable=True,
                )
            uptime = time.monotonic() - watching_since
            if uptime >= target.healthy_after:
                if url is None:
                    return
                last_problem = await self._probe(url)
                if not last_problem:
                    return
            else:
                last_problem = (
                    f"running for {uptime:.1f}s of the {target.healthy_after:g}s required"
                )
            if time.monotonic() >= deadline:
                raise ApplicationError(
                    f"Release {release.record.number} of {release.record.bot_name} is not "
                    f"healthy after {target.health_timeout:g}s: {last_problem}",
                    type="Unhealthy",
                )
            heartbeat(last_problem)
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    @activity.defn
    async def finish_deployment(self, ref: ReleaseRef) -> None:
        release = await self._release(ref)
        await self._stop_previous(release, status="superseded")
        await self._storage.activate_release(release.record)

    # Compensations ----------------------------------------------------------------------

    @activity.defn
    async def stop_new_release(self, ref: ReleaseRef) -> StepReport:
        """Stop the new release: from what it recorded, whatever the targets file says now."""
        record = await self._storage.get_release_of_workflow(ref.workflow_id)
        if record is None:
            return StepReport(summary="No release had been created.")
        release = Release.of(record)
        heartbeat("stopping the new release")
        await self._stop(release)
        await self._storage.set_release_status(record.id, "stopped")
        return StepReport(summary=f"Release #{record.number} stopped.")

    @activity.defn
    async def restore_previous_release(self, ref: ReleaseRef) -> StepReport:
        """Make sure the release that the new one replaced runs as it did before."""
        record = await self._storage.get_release_of_workflow(ref.workflow_id)
        if record is None or record.previous_number is None:
            return StepReport(summary="There was no previous release.")
        previous = await self._storage.get_release(record.bot_name, record.previous_number)
        if previous is None:
            return StepReport(summary="There was no previous release.")
        heartbeat("restarting the previous release")
        await self._ensure_running(Release.of(previous), status="active")
        return StepReport(summary=f"Previous release #{previous.number} restored.")

    @activity.defn
    async def restore_command_snapshot(self, ref: ReleaseRef) -> StepReport:
        snapshot = await self._storage.get_command_snapshot(ref.workflow_id)
        if snapshot is None:
            return StepReport(summary="Slash commands were not changed.")
        record = await self._storage.get_release_of_workflow(ref.workflow_id)
        if record is None:
            return StepReport(summary="Slash commands were not changed.")
        application_id, commands = snapshot
        token = self._token(self._recorded_target(Release.of(record)))
        with discord_errors():
            await self._discord.overwrite_global_commands(token, application_id, commands)
        return StepReport(summary="Slash commands restored.")

    @activity.defn
    async def mark_release_rolled_back(self, ref: ReleaseRef) -> StepReport:
        release = await self._storage.get_release_of_workflow(ref.workflow_id)
        if release is None:
            return StepReport(summary="No release had been created.")
        await self._storage.roll_back_release(release)
        return StepReport(summary=f"Release #{release.number} marked rolled back.")

    # Helpers ----------------------------------------------------------------------------

    def _runtime(self, name: str) -> Runtime:
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise invalid(f"The {name} runtime is not available on this worker.")
        return runtime

    def _token(self, target: Target) -> str:
        token = target.read_token()
        if token is None:
            raise invalid(f"No token for {target.name}: {target.token_source} is not set.")
        return token

    def _recorded_target(self, release: Release) -> Target:
        if release.target is None:
            raise invalid(
                f"{release.name} was recorded without its target, so it cannot be started "
                "again; deploy it anew."
            )
        return release.target

    async def _release(self, ref: ReleaseRef) -> Release:
        record = await self._storage.get_release_of_workflow(ref.workflow_id)
        if record is None:
            raise ApplicationError(
                f"No release recorded for {ref.workflow_id}", type="MissingRecord"
            )
        return Release.of(record)

    async def _retire_if_abandoned(self, record: ReleaseRecord) -> None:
        """Another deployment's release in flight: a conflict while that deployment runs,
        else left over (its workflow was terminated): stopped, so that one copy runs."""
        try:
            description = await activity.client().get_workflow_handle(record.workflow_id).describe()
            status = description.status
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            status = None
        if status == WorkflowExecutionStatus.RUNNING:
            raise ApplicationError(
                f"{record.bot_name} already has a deployment in progress "
                f"({record.workflow_id}); wait for it to finish or cancel it first.",
                type="DeploymentConflict",
                non_retryable=True,
            )
        release = Release.of(record)
        log.warning("abandoned_release_stopped", release=record.number, owner=record.workflow_id)
        await self._stop(release)
        await self._storage.set_release_status(record.id, "stopped")

    async def _stop(self, release: Release) -> None:
        runtime = self._runtime(release.record.runtime)
        with runtime_errors():
            await runtime.stop(release.handle_or_marker())

    async def _apply_command_manifest(self, workflow_id: str, target: Target, token: str) -> None:
        try:
            manifest = target.load_command_manifest()
        except TargetsError as error:
            raise invalid(str(error)) from None
        if manifest is None:
            return
        with discord_errors():
            application = await self._discord.current_application(token)
            application_id = str(application["id"])
            if await self._storage.get_command_snapshot(workflow_id) is None:
                current = await self._discord.global_commands(token, application_id)
                await self._storage.save_command_snapshot(
                    workflow_id, application_id=application_id, commands=current
                )
            await self._discord.overwrite_global_commands(token, application_id, manifest)

    async def _stop_previous(self, release: Release, *, status: str) -> None:
        if release.record.previous_number is None:
            return
        previous = await self._storage.get_release(
            release.record.bot_name, release.record.previous_number
        )
        if previous is None or previous.runtime_handle is None:
            return
        await self._stop(Release.of(previous))
        if previous.status == "active" or status == "superseded":
            await self._storage.set_release_status(previous.id, status)

    async def _ensure_running(self, release: Release, *, status: str) -> ReleaseHandle:
        """Start the release unless the copy we know of (or can find) already runs."""
        record = release.record
        runtime = self._runtime(record.runtime)
        known = release.handle
        if known is not None:
            with runtime_errors():
                running = await runtime.is_running(known)
            if running:
                if record.status != status:
                    await self._storage.set_release_status(record.id, status)
                return known
        target = self._recorded_target(release)
        token = self._token(target)
        port = known.port if known is not None else free_port()
        spec = ReleaseSpec(
            bot_name=record.bot_name,
            release_number=record.number,
            version=record.version,
            marker=release.marker,
            command=target.render_command(version=record.version, port=port),
            image=target.render_image(version=record.version),
            env=self._release_environment(target, token, port),
            working_directory=target.working_directory,
            log_path=self._data_dir / "releases" / f"{record.bot_name}-{record.number}.log",
            port=port,
            run_as=target.user,
            network=target.network,
        )
        try:
            handle = await runtime.start(spec)
        except RuntimeError_ as error:
            raise ApplicationError(
                f"Could not start release {record.number} of {record.bot_name}: {error}",
                type="RuntimeError",
                non_retryable=True,
            ) from None
        await self._storage.set_release_runtime(
            record.id, runtime_handle=handle.model_dump_json(), status=status
        )
        log.info(
            "release started",
            bot=record.bot_name,
            release=record.number,
            runtime=handle.runtime,
            pid=handle.pid,
            port=handle.port,
        )
        return handle

    def _release_environment(self, target: Target, token: str, port: int) -> dict[str, str]:
        """A clean environment: never shipcord's own token or settings."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "DISCORD_TOKEN": token,
            "PORT": str(port),
            "DISCORD_API_BASE": self._discord_api_base,
        }
        env.update(target.env)
        return env

    async def _probe(self, url: str) -> str:
        """'' when the URL answers 2xx, else what went wrong."""
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if 200 <= response.status < 300:
                    return ""
                return f"{url} answered {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            return f"{url} did not answer ({type(error).__name__})"
