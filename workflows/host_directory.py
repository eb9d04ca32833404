"""Which hosts exist and whether each is alive, as Temporal sees their workers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.hosts import host_task_queue
from workflows.supervision_rounds import IncidentNote
from workflows.supervisor_workflow import INCIDENTS_QUERY, supervisor_workflow_id
from workflows.targets import TargetRegistry, TargetsError

DESCRIBE_TIMEOUT = timedelta(seconds=5)
QUERY_TIMEOUT = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class HostInfo:
    name: str
    # The last poll of one of its workers; None when Temporal knows of no worker.
    last_heartbeat: datetime | None
    alive: bool
    workers: int


def known_hosts(targets: TargetRegistry, default_host: str) -> Callable[[], list[str]]:
    """The hosts the targets file uses as it is now: each pinned target's host, and the
    default host when a target has none. When the file cannot be read, the default host."""

    def names() -> list[str]:
        try:
            bots = targets.current().bots.values()
        except TargetsError:
            return [default_host]  # the deployments say what is wrong with the file
        return sorted({t.host or default_host for t in bots})

    return names


class HostDirectory:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        names: Callable[[], Iterable[str]],
        heartbeat_timeout: float,
        default_host: str,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._names = names
        self._timeout = timedelta(seconds=heartbeat_timeout)
        self.default_host = default_host

    @property
    def heartbeat_timeout(self) -> timedelta:
        return self._timeout

    def names(self) -> list[str]:
        """The hosts a target uses (see `known_hosts`)."""
        return sorted(set(self._names()))

    async def describe(self) -> list[HostInfo]:
        """Each host a target uses, and the default host when one of its workers was seen:
        a host that no target uses and no worker announced is not one."""
        used = set(self.names())
        described = []
        for name in sorted(used | {self.default_host}):
            host = await self.describe_host(name)
            if name in used or host.last_heartbeat is not None:
                described.append(host)
        return described

    async def describe_host(self, name: str) -> HostInfo:
        response = await self._client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._client.namespace,
                task_queue=TaskQueue(name=host_task_queue(self._task_queue, name)),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            ),
            timeout=DESCRIBE_TIMEOUT,
        )
        polls = [
            poller.last_access_time.ToDatetime(tzinfo=UTC)
            for poller in response.pollers
            if poller.HasField("last_access_time")
        ]
        last = max(polls, default=None)
        alive = last is not None and datetime.now(UTC) - last < self._timeout
        return HostInfo(name=name, last_heartbeat=last, alive=alive, workers=len(polls))

    async def supervision_incidents(self, host: str) -> list[IncidentNote]:
        """The latest incidents of `host`'s supervisor (none while it has not started)."""
        handle = self._client.get_workflow_handle(supervisor_workflow_id(self._task_queue, host))
        try:
            return await handle.query(
                INCIDENTS_QUERY, result_type=list[IncidentNote], rpc_timeout=QUERY_TIMEOUT
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return []
            raise
