"""A bot's releases and a release's log as its host keeps them, read from any process: this
process's own database when the host is its own, else one short workflow per read."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.service import RPCError

with workflow.unsafe.imports_passed_through():
    from storage import ReleaseRecord, Storage
    from workflows.activity_models import ActivityModel
    from workflows.hosts import host_gone_message, host_task_queue
    from workflows.release_logs import DEFAULT_MAX_CHARS, ReleaseLogs, ReleaseLogTail
    from workflows.targets import Target

RELEASE_READER_WORKFLOW = "shipcordReleaseReader"
# How long a read waits for the host's worker to take it: a person waits for the answer.
HOST_ANSWER_SECONDS = 5.0
READ_SECONDS = 30.0


class ReleaseSummary(ActivityModel):
    """A release as others may read it: no target (its env may hold secrets), no handle."""

    number: int
    version: str
    workflow_id: str
    previous_number: int | None
    runtime: str
    status: str
    created_at: str
    updated_at: str
    live_since: str | None = None

    def record(self, target_name: str) -> ReleaseRecord:
        return ReleaseRecord(
            id=0, bot_name=target_name, runtime_handle=None, **self.model_dump(by_alias=False)
        )


class HostRead(ActivityModel):
    """What to read on `host`: the releases of `target_name`, and the log of release
    `log_of` (0: the newest) when set."""

    host: str
    target_name: str
    log_of: int | None = None
    max_chars: int = DEFAULT_MAX_CHARS


class HostReadAnswer(ActivityModel):
    releases: list[ReleaseSummary]
    log: ReleaseLogTail | None = None


class ReleaseReading:
    """The activity that answers on the host, from its database and its runtimes."""

    def __init__(self, storage: Storage, logs: ReleaseLogs) -> None:
        self._storage = storage
        self._logs = logs

    @activity.defn
    async def read_host_releases(self, read: HostRead) -> HostReadAnswer:
        return await read_here(self._storage, self._logs, read)


async def read_here(storage: Storage, logs: ReleaseLogs, read: HostRead) -> HostReadAnswer:
    records = await storage.list_releases(read.target_name)
    releases = [ReleaseSummary.model_validate(record, from_attributes=True) for record in records]
    log = None
    if read.log_of is not None:
        number = read.log_of or None
        log = await logs.of_release(read.target_name, number, max_chars=read.max_chars)
    return HostReadAnswer(releases=releases, log=log)


@workflow.defn(name=RELEASE_READER_WORKFLOW)
class ReleaseReaderWorkflow:
    """One read on the host's own queue; its answer is its result (encrypted with the
    payload codec when one is set)."""

    @workflow.run
    async def run(self, read: HostRead) -> HostReadAnswer:
        return await workflow.execute_activity_method(
            ReleaseReading.read_host_releases,
            read,
            task_queue=host_task_queue(workflow.info().task_queue, read.host),
            schedule_to_start_timeout=timedelta(seconds=HOST_ANSWER_SECONDS),
            start_to_close_timeout=timedelta(seconds=READ_SECONDS),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


class ReleasesUnreadable(Exception):
    """Releases that cannot be read now; the message says why, to the person who asked."""


class HostUnreachable(ReleasesUnreadable):
    """The releases are on a host that does not answer now."""


class LogNeedsEncryption(ReleasesUnreadable):
    """A release's output would cross Temporal in clear: refused without a payload key."""


class HostReleases:
    """The front end's reader of releases, wherever their host is."""

    def __init__(
        self,
        storage: Storage,
        logs: ReleaseLogs,
        *,
        local_host: str | None,
        default_host: str,
        client: Client | None = None,
        task_queue: str = "",
        encrypted: bool = False,
    ) -> None:
        self._storage = storage
        self._logs = logs
        # The host whose releases this process's own database holds (None: no worker here).
        self._local_host = local_host
        self._default_host = default_host
        self._client = client
        self._task_queue = task_queue
        self._encrypted = encrypted

    def host_of(self, target: Target) -> str:
        return target.host or self._default_host

    def is_local(self, target: Target) -> bool:
        return self.host_of(target) == self._local_host or self._client is None

    async def list(self, target: Target) -> list[ReleaseRecord]:
        """The target's releases, oldest first."""
        answer = await self._read(HostRead(host=self.host_of(target), target_name=target.name))
        return [summary.record(target.name) for summary in answer.releases]

    async def live(self, target: Target) -> ReleaseRecord | None:
        """The release the target runs now, if any."""
        active = [release for release in await self.list(target) if release.status == "active"]
        return max(active, key=lambda release: release.number, default=None)

    async def tail(
        self, target: Target, number: int | None, *, max_chars: int
    ) -> ReleaseLogTail | None:
        """The redacted end of release `number` (the newest when None); None when there is
        no such release."""
        if not self.is_local(target) and not self._encrypted:
            raise LogNeedsEncryption(
                f"The log of **{target.name}** is on host {self.host_of(target)}, and a "
                "release's output crosses Temporal only encrypted: an admin has to set "
                "SHIPCORD_PAYLOAD_KEY (the same on every shipcord process)."
            )
        read = HostRead(
            host=self.host_of(target),
            target_name=target.name,
            log_of=number or 0,
            max_chars=max_chars,
        )
        return (await self._read(read)).log

    async def close(self) -> None:
        await self._logs.close()

    async def _read(self, read: HostRead) -> HostReadAnswer:
        if self._client is None or read.host == self._local_host:
            return await read_here(self._storage, self._logs, read)
        try:
            return await self._client.execute_workflow(
                ReleaseReaderWorkflow.run,
                read,
                id=f"shipcord-release-read-{uuid.uuid4().hex}",
                task_queue=self._task_queue,
                execution_timeout=timedelta(seconds=HOST_ANSWER_SECONDS + READ_SECONDS + 10),
            )
        except (WorkflowFailureError, RPCError):
            raise HostUnreachable(
                f"The releases of **{read.target_name}** are kept on its host, and "
                f"{host_gone_message(read.host)} now: try again once it is back."
            ) from None
