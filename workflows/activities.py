"""The activities of botDeploymentWorkflow: all of the deployment's I/O.

Each is idempotent: Temporal may run one again after it already did its work (a retry,
or a worker that crashed before reporting), and the second run changes nothing more.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from storage import DeploymentConflict, ReleaseRecord, Storage
from workflows.activity_names import ActivityName
from workflows.discord_rest import DiscordApiError, DiscordRest, TokenRejected
from workflows.models import (
    CreateRecordInput,
    DeploymentRef,
    OutcomeInput,
    ReleaseInfo,
    ValidatedDeployment,
)
from workflows.runtimes import ReleaseHandle, ReleaseSpec, Runtime, RuntimeError_
from workflows.targets import (
    Target,
    TargetRegistry,
    TargetsError,
    UnknownTarget,
    validate_version,
)

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


def release_marker(release: ReleaseRecord) -> str:
    return f"{release.bot_name}#{release.number}@{release.workflow_id}"


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
            self.restore_command_snapshot,
            self.mark_release_rolled_back,
            self.record_outcome,
        ]

    # Forward steps ----------------------------------------------------------------------

    @activity.defn(name=ActivityName.VALIDATE.value)
    async def validate_deployment(self, ref: DeploymentRef) -> ValidatedDeployment:
        target = self._target(ref.bot_name)
        try:
            validate_version(ref.version)
        except ValueError as error:
            raise invalid(str(error)) from None
        self._runtime(target)
        token = self._token(target)
        try:
            user = await self._discord.current_user(token)
            application = await self._discord.current_application(token)
        except TokenRejected as error:
            raise ApplicationError(str(error), type="TokenRejected", non_retryable=True) from None
        except DiscordApiError as error:
            raise ApplicationError(str(error), type="DiscordApiError") from None
        return ValidatedDeployment(
            bot_name=target.name,
            version=ref.version,
            runtime=target.runtime,
            strategy=target.strategy,
            bot_user_id=str(user["id"]),
            application_id=str(application["id"]),
        )

    @activity.defn(name=ActivityName.CREATE_RECORD.value)
    async def create_bot_record(self, request: CreateRecordInput) -> ReleaseInfo:
        try:
            await self._storage.reserve_deployment(
                workflow_id=request.workflow_id,
                bot_name=request.bot_name,
                version=request.version,
                owner_id=request.owner,
                guild_id=request.guild_id,
                channel_id=request.channel_id,
            )
        except DeploymentConflict as error:
            raise ApplicationError(
                str(error), type="DeploymentConflict", non_retryable=True
            ) from None
        release = await self._storage.create_release(
            workflow_id=request.workflow_id,
            bot_name=request.bot_name,
            bot_type=request.bot_type,
            version=request.version,
            runtime=request.runtime,
        )
        return ReleaseInfo(
            bot_id=release.bot_name,
            release_number=release.number,
            previous_release_number=release.previous_number,
        )

    @activity.defn(name=ActivityName.DEPLOY.value)
    async def deploy_to_platform(self, ref: DeploymentRef) -> None:
        release = await self._release(ref)
        target = self._target(ref.bot_name)
        token = self._token(target)
        heartbeat("applying slash commands")
        await self._apply_command_manifest(ref.workflow_id, target, token)
        if target.strategy == "replace":
            heartbeat("stopping the previous release")
            await self._stop_previous(release, status="stopped")
        heartbeat("starting the new release")
        await self._ensure_running(release, target, token, status="running")

    @activity.defn(name=ActivityName.HEALTH_CHECK.value)
    async def run_health_check(self, ref: DeploymentRef) -> None:
        release = await self._release(ref)
        target = self._target(ref.bot_name)
        handle = self._handle_of(release)
        runtime = self._runtime(target)
        url = target.render_health_url(port=handle.port)
        # Uptime is measured here, on the monotonic clock: the process start time that
        # psutil reports is derived from boot time and can disagree with the wall clock.
        watching_since = time.monotonic()
        deadline = watching_since + target.health_timeout
        last_problem = "not checked yet"
        while True:
            if not await self._is_running(runtime, handle):
                reason = await runtime.exit_description(handle)
                raise ApplicationError(
                    f"Release {release.number} of {release.bot_name} is not running: {reason}",
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
                    f"Release {release.number} of {release.bot_name} is not healthy after "
                    f"{target.health_timeout:g}s: {last_problem}",
                    type="Unhealthy",
                )
            heartbeat(last_problem)
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    @activity.defn(name=ActivityName.FINISH.value)
    async def finish_deployment(self, ref: DeploymentRef) -> None:
        release = await self._release(ref)
        await self._stop_previous(release, status="superseded")
        await self._storage.activate_release(release)

    # Compensations ----------------------------------------------------------------------

    @activity.defn(name=ActivityName.STOP_RELEASE.value)
    async def stop_new_release(self, ref: DeploymentRef) -> None:
        """Stop the new release, then make sure the one it replaced runs as before.

        Stopping needs only what the release recorded, so it works even if the target
        has since been edited out of the targets file.
        """
        release = await self._storage.get_release_of_workflow(ref.workflow_id)
        if release is None:
            return
        runtime = self._runtimes.get(release.runtime)
        if runtime is None:
            raise invalid(f"The {release.runtime} runtime is not available on this worker.")
        heartbeat("stopping the new release")
        # The marker finds a copy started by an attempt that crashed before saving it.
        handle = (
            self._handle_of(release)
            if release.runtime_handle
            else ReleaseHandle(
                runtime=release.runtime, marker=release_marker(release), port=0, log_path=""
            )
        )
        try:
            await runtime.stop(handle)
        except RuntimeError_ as error:
            raise ApplicationError(str(error), type="RuntimeError") from None
        await self._storage.set_release_runtime(
            release.id, runtime_handle=release.runtime_handle, status="stopped"
        )
        if release.previous_number is None:
            return
        previous = await self._storage.get_release(release.bot_name, release.previous_number)
        if previous is None:
            return
        heartbeat("restarting the previous release")
        target = self._target(ref.bot_name)
        await self._ensure_running(previous, target, self._token(target), status="active")

    @activity.defn(name=ActivityName.RESTORE_COMMANDS.value)
    async def restore_command_snapshot(self, ref: DeploymentRef) -> None:
        snapshot = await self._storage.get_command_snapshot(ref.workflow_id)
        if snapshot is None:
            return
        application_id, commands = snapshot
        token = self._token(self._target(ref.bot_name))
        try:
            await self._discord.overwrite_global_commands(token, application_id, commands)
        except (DiscordApiError, TokenRejected) as error:
            raise ApplicationError(str(error), type="DiscordApiError") from None

    @activity.defn(name=ActivityName.MARK_ROLLED_BACK.value)
    async def mark_release_rolled_back(self, ref: DeploymentRef) -> None:
        release = await self._storage.get_release_of_workflow(ref.workflow_id)
        if release is not None:
            await self._storage.roll_back_release(release)

    @activity.defn(name=ActivityName.RECORD_OUTCOME.value)
    async def record_outcome(self, outcome: OutcomeInput) -> None:
        await self._storage.close_deployment(
            outcome.workflow_id, state=outcome.state.value, error=outcome.error
        )

    # Helpers ----------------------------------------------------------------------------

    def _target(self, name: str) -> Target:
        try:
            return self._targets.get(name)
        except UnknownTarget as error:
            raise invalid(str(error)) from None
        except TargetsError as error:
            raise invalid(f"The targets file is not usable: {error}") from None

    def _runtime(self, target: Target) -> Runtime:
        runtime = self._runtimes.get(target.runtime)
        if runtime is None:
            raise invalid(f"The {target.runtime} runtime is not available on this worker.")
        return runtime

    def _token(self, target: Target) -> str:
        token = target.read_token()
        if token is None:
            raise invalid(f"No token for {target.name}: {target.token_source} is not set.")
        return token

    async def _release(self, ref: DeploymentRef) -> ReleaseRecord:
        release = await self._storage.get_release_of_workflow(ref.workflow_id)
        if release is None:
            raise ApplicationError(
                f"No release recorded for {ref.workflow_id}", type="MissingRecord"
            )
        return release

    async def _is_running(self, runtime: Runtime, handle: ReleaseHandle) -> bool:
        try:
            return await runtime.is_running(handle)
        except RuntimeError_ as error:
            # The runtime itself is unreachable (e.g. the Docker engine): Temporal retries.
            raise ApplicationError(str(error), type="RuntimeError") from None

    def _handle_of(self, release: ReleaseRecord) -> ReleaseHandle:
        if release.runtime_handle is None:
            raise ApplicationError(
                f"Release {release.number} of {release.bot_name} was never started",
                type="MissingRecord",
            )
        return ReleaseHandle.model_validate_json(release.runtime_handle)

    async def _apply_command_manifest(self, workflow_id: str, target: Target, token: str) -> None:
        try:
            manifest = target.load_command_manifest()
        except TargetsError as error:
            raise invalid(str(error)) from None
        if manifest is None:
            return
        try:
            application = await self._discord.current_application(token)
            application_id = str(application["id"])
            if await self._storage.get_command_snapshot(workflow_id) is None:
                current = await self._discord.global_commands(token, application_id)
                await self._storage.save_command_snapshot(
                    workflow_id, application_id=application_id, commands=current
                )
            await self._discord.overwrite_global_commands(token, application_id, manifest)
        except TokenRejected as error:
            raise ApplicationError(str(error), type="TokenRejected", non_retryable=True) from None
        except DiscordApiError as error:
            raise ApplicationError(str(error), type="DiscordApiError") from None

    async def _stop_previous(self, release: ReleaseRecord, *, status: str) -> None:
        if release.previous_number is None:
            return
        previous = await self._storage.get_release(release.bot_name, release.previous_number)
        if previous is None or previous.runtime_handle is None:
            return
        handle = ReleaseHandle.model_validate_json(previous.runtime_handle)
        runtime = self._runtimes.get(handle.runtime)
        if runtime is None:
            return
        try:
            await runtime.stop(handle)
        except RuntimeError_ as error:
            raise ApplicationError(str(error), type="RuntimeError") from None
        if previous.status == "active" or status == "superseded":
            await self._storage.set_release_status(previous.id, status)

    async def _ensure_running(
        self, release: ReleaseRecord, target: Target, token: str, *, status: str
    ) -> ReleaseHandle:
        """Start the release unless the copy we know of (or can find) already runs."""
        runtime = self._runtimes.get(release.runtime)
        if runtime is None:
            raise invalid(f"The {release.runtime} runtime is not available on this worker.")
        known = (
            ReleaseHandle.model_validate_json(release.runtime_handle)
            if release.runtime_handle
            else None
        )
        if known is not None and await self._is_running(runtime, known):
            if release.status != status:
                await self._storage.set_release_status(release.id, status)
            return known
        port = known.port if known is not None else free_port()
        spec = ReleaseSpec(
            bot_name=release.bot_name,
            release_number=release.number,
            version=release.version,
            marker=release_marker(release),
            command=target.render_command(version=release.version, port=port),
            image=target.render_image(version=release.version),
            env=self._release_environment(target, token, port),
            working_directory=self._targets.working_directory,
            log_path=self._data_dir / "releases" / f"{release.bot_name}-{release.number}.log",
            port=port,
        )
        try:
            handle = await runtime.start(spec)
        except RuntimeError_ as error:
            raise ApplicationError(
                f"Could not start release {release.number} of {release.bot_name}: {error}",
                type="RuntimeError",
                non_retryable=True,
            ) from None
        await self._storage.set_release_runtime(
            release.id, runtime_handle=handle.model_dump_json(), status=status
        )
        log.info(
            "release started",
            bot=release.bot_name,
            release=release.number,
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
