"""The activities of botDeploymentWorkflow: all of the deployment's I/O."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError, RPCStatusCode

from storage import ReleaseRecord, ReleasesInFlight, Storage
from workflows.activity_models import (
    BotIdentity,
    CreateReleaseInput,
    DeploymentRef,
    PromotedRelease,
    PromotionCheck,
    RecalledRelease,
    RecallInput,
    ReleaseInfo,
    ReleaseRef,
    StepReport,
    TokenCheck,
    ValidatedDeployment,
)
from workflows.discord_rest import DiscordApiError, DiscordRest, TokenRejected
from workflows.hosts import DEFAULT_HOST, ON_ANOTHER_HOST
from workflows.models import unit_name, validate_version
from workflows.promotion import PromotionRefused, promotable
from workflows.release_operator import ReleaseOperator, invalid, runtime_errors
from workflows.release_view import Release
from workflows.runtimes import reachable_url
from workflows.targets import (
    Target,
    TargetRegistry,
    TargetsError,
    UnknownTarget,
)

log = structlog.get_logger(__name__)

TARGETS_UNUSABLE = (
    "The targets file cannot be read, so nothing can be deployed; an admin has to fix it "
    "(shipcord's log says what is wrong)."
)
HEALTH_POLL_SECONDS = 0.25


def heartbeat(detail: str) -> None:
    # A local activity has no heartbeat: its worker keeps the workflow task alive instead.
    if activity.in_activity() and not activity.info().is_local:
        activity.heartbeat(detail)


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


class DeploymentActivities:
    """The activities, with their dependencies given once (one instance per worker)."""

    def __init__(
        self,
        *,
        storage: Storage,
        discord: DiscordRest,
        releases: ReleaseOperator,
        targets: TargetRegistry,
        http: aiohttp.ClientSession,
        default_host: str = DEFAULT_HOST,
        host_start_timeout: float = 60.0,
        host: str | None = None,
    ) -> None:
        self._storage = storage
        self._discord = discord
        self._releases = releases
        self._targets = targets
        self._http = http
        self._default_host = default_host
        self._host_start_timeout = host_start_timeout
        # The host this worker runs on, where the steps it runs as local activities act.
        self._host = host or default_host

    @property
    def releases(self) -> ReleaseOperator:
        return self._releases

    def functions(self) -> list[Callable[..., Any]]:
        """Every activity (one worker serving both queues, as in the engine tests)."""
        return [*self.shared_functions(), *self.host_functions()]

    def shared_functions(self) -> list[Callable[..., Any]]:
        """The activities any host may run: they touch no release (shared task queue)."""
        return [self.validate_deployment]

    def before_hosts_functions(self) -> list[Callable[..., Any]]:
        """The release steps c107ed9 scheduled on the shared queue (it had no hosts): one
        still in flight when it was stopped is retried there after the upgrade, so the
        default host's worker runs them on that queue too."""
        return [
            f for f in self.host_functions() if f not in (self.recall_release, self.check_promotion)
        ]

    def local_step_functions(self) -> list[Callable[..., Any]]:
        """The short steps the workflow first tries as local activities of whichever worker
        takes its task (`refuse_if_elsewhere`): every worker registers them."""
        return [self.check_bot_token, self.create_bot_record, self.finish_deployment]

    def refuse_if_elsewhere(self, host: str | None) -> None:
        """A step run as a local activity acts only on its release's host: elsewhere it
        does nothing and says so, and the workflow schedules it on that host's queue."""
        if activity.info().is_local and host != self._host:
            raise ApplicationError(
                f"this worker runs on host {self._host}, not {host}",
                type=ON_ANOTHER_HOST,
                non_retryable=True,
                # Expected wherever workers of several hosts share the workflow tasks.
                category=ApplicationErrorCategory.BENIGN,
            )

    def host_functions(self) -> list[Callable[..., Any]]:
        """The activities that touch a release: only its host runs them (its own queue)."""
        return [
            self.check_bot_token,
            self.check_promotion,
            self.recall_release,
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
        """The only read of the targets file: the target travels with the deployment, with
        the host it runs on resolved here, once.

        A rollback deploys the version and the target recorded with the release it puts
        back (read on that release's host, by `recall_release`); the bot must still be
        declared, and the targets file's approval applies.

        It reads neither the token nor the command manifest (`ref.checked_on_host`): any
        worker may run it, and a worker holds only its own host's bots' tokens and files;
        `check_bot_token` reads them on the bot's host. Deployments validated before the
        `token-on-host` patch still read them here, as they did.
        """
        try:
            declared = self._targets.current().resolve(ref.bot_name, ref.environment)
            promotion = self._promotion(declared, ref)
        except TargetsError as error:
            # Its problems name other servers' bots and the host's paths: for the log only.
            log.error("targets_file_invalid", error=str(error))
            raise invalid(TARGETS_UNUSABLE) from None
        except UnknownTarget as error:
            raise invalid(str(error)) from None
        try:
            host = declared.host or self._default_host
            target = declared.model_copy(update={"host": host})
            version = ref.version
            if ref.restore_release is None:
                version = validate_version(ref.version)
                if not ref.checked_on_host:
                    target.load_command_manifest()
        except ValueError as error:
            raise invalid(str(error)) from None
        self._releases.runtime(target.runtime)
        identity = None if ref.checked_on_host else await self._identity(target)
        return ValidatedDeployment(
            target=target,
            version=version,
            approval=declared.approval,
            restored_release=ref.restore_release,
            bot_user_id=identity.bot_user_id if identity else "",
            application_id=identity.application_id if identity else "",
            host=host,
            host_start_timeout=self._host_start_timeout,
            promotion=promotion,
        )

    def _promotion(self, declared: Target, ref: DeploymentRef) -> PromotionCheck | None:
        """What a release must have done in the source environment to come to `declared`
        (a rollback restores one that came here already: nothing)."""
        if declared.promote_from is None or ref.restore_release is not None:
            return None
        source = self._targets.current().get(unit_name(declared.bot_name, declared.promote_from))
        return PromotionCheck(
            source=source.name,
            source_host=source.host or self._default_host,
            version=ref.version,
            soak=declared.soak,
        )

    @activity.defn
    async def check_promotion(self, check: PromotionCheck) -> PromotedRelease:
        """On the source environment's host, which keeps its releases: the version is the
        one live there, soaked and without a crash since."""
        try:
            return await promotable(self._storage, check, datetime.now(UTC))
        except PromotionRefused as refused:
            raise invalid(str(refused)) from None

    @activity.defn
    async def check_bot_token(self, check: TokenCheck) -> BotIdentity:
        """On the bot's host, before anything is recorded: its command manifest reads,
        and its token is set and Discord says whose it is (a missing or rejected token, or
        a broken manifest, fails the deployment at once)."""
        self.refuse_if_elsewhere(check.target.host)
        try:
            check.target.load_command_manifest()
        except TargetsError as error:
            raise invalid(str(error)) from None
        return await self._identity(check.target)

    @activity.defn
    async def recall_release(self, request: RecallInput) -> RecalledRelease:
        """The target and version recorded with an earlier release, on its host."""
        bot_name, number = request.bot_name, request.release_number
        record = await self._storage.get_release(bot_name, number)
        if record is None:
            raise invalid(f"{bot_name} has no release #{number} to roll back to.")
        release = self._releases.release(record)
        if release.target is None:
            raise invalid(
                f"Release #{number} of {bot_name} was recorded without its target, so it "
                "cannot be put back; deploy its version instead."
            )
        try:
            release.target.load_command_manifest()
        except TargetsError as error:
            raise invalid(str(error)) from None
        return RecalledRelease(target=release.target, version=record.version)

    @activity.defn
    async def create_bot_record(self, request: CreateReleaseInput) -> ReleaseInfo:
        target = request.target
        if target is None:
            raise invalid(
                "This deployment was asked for by shipcord before an upgrade, without the "
                "target its release needs; deploy it again."
            )
        self.refuse_if_elsewhere(target.host)
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
        target = self._releases.recorded_target(release)
        token = self._releases.token(target)
        heartbeat("applying slash commands")
        await self._apply_command_manifest(ref.workflow_id, target, token)
        if target.strategy == "replace":
            heartbeat("stopping the previous release")
            await self._stop_previous(release, status="stopped")
        heartbeat("starting the new release")
        await self._releases.ensure_running(release, status="running")

    @activity.defn
    async def run_health_check(self, ref: ReleaseRef) -> None:
        release = await self._release(ref)
        target = self._releases.recorded_target(release)
        if release.handle is None:
            raise ApplicationError(f"{release.name} was never started", type="MissingRecord")
        handle = release.handle
        runtime = self._releases.runtime(handle.runtime)
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
        self.refuse_if_elsewhere(ref.host)
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
        release = self._releases.release(record)
        heartbeat("stopping the new release")
        await self._releases.stop(release)
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
        await self._releases.ensure_running(self._releases.release(previous), status="active")
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
        token = self._releases.token(self._releases.recorded_target(self._releases.release(record)))
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

    async def _identity(self, target: Target) -> BotIdentity:
        token = self._releases.token(target)
        with discord_errors():
            user = await self._discord.current_user(token)
            application = await self._discord.current_application(token)
        return BotIdentity(bot_user_id=str(user["id"]), application_id=str(application["id"]))

    async def _release(self, ref: ReleaseRef) -> Release:
        record = await self._storage.get_release_of_workflow(ref.workflow_id)
        if record is None:
            raise ApplicationError(
                f"No release recorded for {ref.workflow_id}", type="MissingRecord"
            )
        return self._releases.release(record)

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
        release = self._releases.release(record)
        log.warning("abandoned_release_stopped", release=record.number, owner=record.workflow_id)
        await self._releases.stop(release)
        await self._storage.set_release_status(record.id, "stopped")

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
        await self._releases.stop(self._releases.release(previous))
        if previous.status == "active" or status == "superseded":
            await self._storage.set_release_status(previous.id, status)

    async def _probe(self, url: str) -> str:
        """'' when the URL answers 2xx, else what went wrong."""
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if 200 <= response.status < 300:
                    return ""
                return f"{url} answered {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            return f"{url} did not answer ({type(error).__name__})"
