"""The one owner of deployment rows: it reserves and starts deployments, adopts the ones
other Temporal clients start, and records how each ended."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from temporalio.client import WorkflowExecution
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from storage import DeploymentConflict, DeploymentRecord, DuplicateWorkflowId, Storage
from workflows.deployment_client import (
    DeploymentClient,
    UnreadableDeployment,
    unix_ms,
)
from workflows.host_directory import HostDirectory, HostInfo
from workflows.models import (
    DeploymentInput,
    DeploymentResult,
    DeploymentState,
    DeploymentStatus,
    deployment_workflow_id,
    is_adoptable_workflow_id,
    unit_name,
)
from workflows.redaction import redact

log = structlog.get_logger(__name__)

# Ids are deploy-{bot}-{ms}: a taken one moves to the next millisecond, this many times.
MAX_ID_ATTEMPTS = 1000
START_TIMEOUT_SECONDS = 10.0
# After an ambiguous start failure, how long to look whether the workflow exists after all.
START_CHECK_SECONDS = 3.0
# How far back the first look for other clients' deployments reaches, and how far each
# later look reaches past the previous one (Temporal's visibility lags a little).
DISCOVERY_HORIZON = timedelta(days=2)
DISCOVERY_OVERLAP = timedelta(minutes=1)
# How long one look at whether a host has a worker serves every card that asks.
HOST_LOOK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a deployment started by another client may be shown: None for nowhere."""

    guild_id: str | None
    channel_id: str | None


# Decides, for another client's deployment, the server and channel it may be shown in.
PlacementRule = Callable[[DeploymentInput], Awaitable[Placement]]


async def anywhere_asked(request: DeploymentInput) -> Placement:
    return Placement(request.guild_id, request.channel_id)


class DeploymentService:
    """Starts deployments for the front end (id, reservation, start, undo on failure),
    adopts other clients' deployments, and closes rows as deployments end."""

    def __init__(
        self,
        deployments: DeploymentClient,
        storage: Storage,
        *,
        clock: Callable[[], int] = unix_ms,
        start_timeout: float = START_TIMEOUT_SECONDS,
        hosts: HostDirectory | None = None,
    ) -> None:
        self.deployments = deployments
        self._storage = storage
        self._clock = clock
        self._start_timeout = start_timeout
        self._hosts = hosts
        self._discovered_until: datetime | None = None
        self._host_looks: dict[str, tuple[float, bool]] = {}
        # Other clients' workflows that will never be adopted: logged once, then skipped.
        self._not_adoptable: set[str] = set()

    async def hosts(self) -> list[HostInfo]:
        """The known hosts and their heartbeats (none without a host directory)."""
        if self._hosts is None:
            return []
        try:
            return await self._hosts.describe()
        except RPCError:
            return []  # /status still answers; the deployments say Temporal is unreachable

    async def waits_for_lost_host(self, status: DeploymentStatus) -> bool:
        """Whether the deployment runs a step on a host that has no running worker now
        (False when unknown)."""
        if status.state is not DeploymentState.RUNNING or status.host is None:
            return False
        return await self._host_is_down(status.host)

    async def _host_is_down(self, name: str) -> bool:
        if self._hosts is None:
            return False
        now = asyncio.get_running_loop().time()
        looked = self._host_looks.get(name)
        if looked is None or now - looked[0] > HOST_LOOK_SECONDS:
            try:
                down = not (await self._hosts.describe_host(name)).alive
            except RPCError:
                down = False  # Temporal itself is what is unreachable
            looked = self._host_looks[name] = (now, down)
        return looked[1]

    # -- starting -------------------------------------------------------------------------

    async def start(
        self, request: DeploymentInput, *, start_delay: timedelta | None = None
    ) -> DeploymentRecord:
        """Reserve the bot and start its deployment; the reserved row is returned."""
        record = await self.reserve(request)
        await self.launch(record, request, start_delay=start_delay)
        return record

    async def reserve(self, request: DeploymentInput) -> DeploymentRecord:
        """Reserve the bot under a fresh workflow id; DeploymentConflict when it already
        has a deployment in progress here."""
        millis = self._clock()
        for offset in range(MAX_ID_ATTEMPTS):
            try:
                return await self._storage.reserve_deployment(
                    workflow_id=deployment_workflow_id(request.bot_name, millis + offset),
                    # Kept by target: one open deployment per bot and environment.
                    bot_name=unit_name(request.bot_name, request.environment),
                    version=request.version,
                    owner_id=request.owner,
                    guild_id=request.guild_id,
                    channel_id=request.channel_id,
                )
            except DuplicateWorkflowId:
                continue
        raise RuntimeError(f"no free workflow id for {request.bot_name} near {millis}")

    async def launch(
        self,
        record: DeploymentRecord,
        request: DeploymentInput,
        *,
        start_delay: timedelta | None = None,
    ) -> None:
        """Start the reserved deployment's workflow. DeploymentConflict when Temporal says
        another client's deployment of the bot runs; other failures are raised after the
        reservation was undone, unless the workflow started after all."""
        workflow_id = record.workflow_id
        try:
            async with asyncio.timeout(self._start_timeout):
                await self.deployments.start(
                    request, workflow_id=workflow_id, start_delay=start_delay
                )
        except WorkflowAlreadyStartedError:
            await self._storage.discard_reservation(workflow_id)
            raise DeploymentConflict(
                unit_name(request.bot_name, request.environment), workflow_id
            ) from None
        except BaseException as error:
            if isinstance(error, Exception) and await self._started_after_all(workflow_id):
                return
            await asyncio.shield(self._storage.discard_reservation(workflow_id))
            raise

    async def _started_after_all(self, workflow_id: str) -> bool:
        """A timeout or a lost connection says nothing about whether the start happened."""
        try:
            async with asyncio.timeout(START_CHECK_SECONDS):
                return await self.deployments.exists(workflow_id)
        except Exception:
            return False

    # -- other clients' deployments -------------------------------------------------------

    async def adopt_started_elsewhere(self, placement: PlacementRule = anywhere_asked) -> int:
        """Record the deployments other Temporal clients started, found through Temporal's
        visibility; returns how many were new. Each is read on its own: one that cannot be
        read is logged once and skipped, and never holds the others back."""
        now = datetime.now(UTC)
        since = (
            now - DISCOVERY_HORIZON
            if self._discovered_until is None
            else self._discovered_until - DISCOVERY_OVERLAP
        )
        try:
            found = {
                execution.id: execution async for execution in self.deployments.started_since(since)
            }
        except (RPCError, OSError, RuntimeError) as error:
            log.warning("deployment_discovery_failed", error=str(error))
            return 0
        candidates = set(found) - self._not_adoptable
        known = await self._storage.known_workflow_ids(candidates)
        until = now
        adopted = 0
        for workflow_id in sorted(candidates - known):
            execution = found[workflow_id]
            try:
                outcome = await self._adopt(execution, placement)
            except (RPCError, OSError, RuntimeError, TimeoutError) as error:
                log.warning(
                    "deployment_discovery_failed", workflow_id=workflow_id, error=str(error)
                )
                outcome = None
            if outcome is None:
                # Not now (Temporal failed, or the bot's lock is held here): look again.
                until = min(until, execution.start_time)
            elif outcome:
                adopted += 1
        self._discovered_until = until
        return adopted

    async def _adopt(self, execution: WorkflowExecution, placement: PlacementRule) -> bool | None:
        """True once adopted, False when it never will be, None when not now."""
        workflow_id = execution.id
        try:
            request = await self.deployments.input_of(workflow_id)
        except UnreadableDeployment as unreadable:
            self._skip(workflow_id, unreadable.reason)
            return False
        if not is_adoptable_workflow_id(workflow_id, request.bot_name):
            self._skip(workflow_id, f"its id is not deploy-{request.bot_name}-<digits>")
            return False
        where = await placement(request)
        if (where.guild_id, where.channel_id) != (request.guild_id, request.channel_id):
            log.warning(
                "deployment_placement_refused",
                workflow_id=workflow_id,
                guild_id=request.guild_id,
                channel_id=request.channel_id,
            )
        if not await self._storage.adopt_deployment(
            workflow_id=workflow_id,
            bot_name=unit_name(request.bot_name, request.environment),
            version=request.version,
            owner_id=request.owner,
            guild_id=where.guild_id,
            channel_id=where.channel_id,
            created_at=execution.start_time.isoformat(timespec="milliseconds"),
        ):
            return None
        log.info("deployment_discovered", workflow_id=workflow_id)
        return True

    def _skip(self, workflow_id: str, reason: str) -> None:
        self._not_adoptable.add(workflow_id)
        log.warning("deployment_not_adopted", workflow_id=workflow_id[:120], reason=reason)

    # -- ends -----------------------------------------------------------------------------

    async def note_version(self, record: DeploymentRecord, version: str) -> DeploymentRecord:
        """The row with the version the workflow resolved (a rollback's, another client's
        `latest` of one); recorded when it differs."""
        if version == record.version:
            return record
        await self._storage.set_deployment_version(record.workflow_id, version)
        return dataclasses.replace(record, version=version)

    async def close(self, record: DeploymentRecord, result: DeploymentResult) -> bool:
        """Record how the deployment ended, which frees the bot for its next deployment;
        True the first time."""
        if result.version is not None:
            record = await self.note_version(record, result.version)
        return await self._storage.close_deployment(
            record.workflow_id,
            state=result.final_state.value,
            # SQLite is an exit too: the error is redacted (a client's result may not be).
            error=redact(result.error) if result.error else None,
            result=redact(result.model_dump_json()),
        )
