"""Supervision: what should run (active releases) against what runs, one round at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from storage import ReleaseWatch, Storage
from workflows.release_operator import ReleaseOperator
from workflows.release_view import Release

log = structlog.get_logger(__name__)


class SupervisionSettings(BaseModel):
    interval_seconds: float = Field(10.0, gt=0)
    restart_limit: int = Field(5, ge=1)
    restart_window_seconds: float = Field(600.0, gt=0)
    max_backoff_seconds: float = Field(60.0, ge=0)
    # The host supervised, and its queue, where the rounds run (None: the shared queue,
    # as a supervisor started before hosts does).
    host: str | None = None
    task_queue: str | None = None


class IncidentNote(BaseModel):
    """An incident as the host recorded it, for a front end with another database."""

    key: str
    bot_name: str
    kind: str
    message: str
    release_number: int | None = None
    workflow_id: str | None = None


class ReconcileReport(BaseModel):
    restarted: list[str] = Field(default_factory=list)
    crash_looping: list[str] = Field(default_factory=list)
    stopped: list[str] = Field(default_factory=list)
    incidents: list[IncidentNote] = Field(default_factory=list)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class SupervisionActivities:
    def __init__(self, *, storage: Storage, releases: ReleaseOperator) -> None:
        self._storage = storage
        self._releases = releases

    @activity.defn
    async def reconcile(self, settings: SupervisionSettings) -> ReconcileReport:
        report = ReconcileReport()
        now = datetime.now(UTC)
        wanted: set[str] = set()
        busy_bots: set[str] = set()
        for record in await self._storage.releases_with_status("pending", "running"):
            release = self._releases.release(record)
            if await self._deployment_open(record.workflow_id):
                wanted.add(release.marker)
                busy_bots.add(record.bot_name)
            else:
                await self._retire_abandoned(release, report)
        for record in await self._storage.releases_with_status("active"):
            release = self._releases.release(record)
            wanted.add(release.marker)
            if record.bot_name not in busy_bots:
                await self._keep_running(release, settings, now, report)
        for marker, (runtime, handle) in (await self._releases.running_markers()).items():
            if marker in wanted or parse_marker(marker)[0] in busy_bots:
                continue
            bot_name, number, workflow_id = parse_marker(marker)
            if await self._wanted_since(bot_name, number, workflow_id):
                continue
            await runtime.stop(handle)
            await self._incident(
                report,
                f"orphan:{marker}:{handle.pid or handle.container_id}",
                bot_name,
                "orphan_stopped",
                f"A copy of release #{number} of **{bot_name}** was running although no "
                "deployment or active release wants it: it was stopped.",
                release_number=number,
                workflow_id=workflow_id,
            )
            report.stopped.append(marker)
        return report

    async def _wanted_since(
        self, bot_name: str, number: int | None, workflow_id: str | None
    ) -> bool:
        """Whether a copy found running became wanted after the releases were read: a
        deployment that started meanwhile has recorded its release and started it since."""
        if workflow_id is not None and await self._deployment_open(workflow_id):
            return True
        if number is None:
            return False
        record = await self._storage.get_release(bot_name, number)
        return record is not None and record.status == "active"

    async def _deployment_open(self, workflow_id: str) -> bool:
        try:
            description = await activity.client().get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return description.status == WorkflowExecutionStatus.RUNNING

    async def _retire_abandoned(self, release: Release, report: ReconcileReport) -> None:
        record = release.record
        await self._releases.stop(release)
        await self._storage.set_release_status(record.id, "stopped")
        await self._incident(
            report,
            f"abandoned:{record.id}",
            record.bot_name,
            "abandoned_stopped",
            f"Release #{record.number} of **{record.bot_name}** was left running by "
            f"deployment `{record.workflow_id}`, which ended without finishing (it was "
            "terminated): it was stopped.",
            release_number=record.number,
            workflow_id=record.workflow_id,
        )
        report.stopped.append(release.marker)

    async def _keep_running(
        self,
        release: Release,
        settings: SupervisionSettings,
        now: datetime,
        report: ReconcileReport,
    ) -> None:
        record = release.record
        if await self._releases.is_running(release):
            return
        watch = await self._storage.get_watch(record.id) or ReleaseWatch(
            release_id=record.id, restarts=(), next_attempt_at=None, crash_looping=False
        )
        if watch.crash_looping:
            return
        if watch.next_attempt_at and now < datetime.fromisoformat(watch.next_attempt_at):
            return
        window = timedelta(seconds=settings.restart_window_seconds)
        recent = [t for t in watch.restarts if now - datetime.fromisoformat(t) < window]
        reason = await self._releases.exit_description(release)
        if len(recent) >= settings.restart_limit:
            await self._releases.stop(release)
            await self._storage.save_watch(
                ReleaseWatch(record.id, tuple(recent), None, crash_looping=True)
            )
            await self._incident(
                report,
                f"crash-loop:{record.id}:{recent[0]}",
                record.bot_name,
                "crash_looping",
                f"Release #{record.number} of **{record.bot_name}** keeps stopping ({reason}): "
                f"after {len(recent)} restarts in {format_seconds(window.total_seconds())} "
                "it is left stopped. The bot is DOWN until it is deployed again.",
                release_number=record.number,
                workflow_id=record.workflow_id,
            )
            report.crash_looping.append(release.marker)
            return
        await self._releases.ensure_running(release, status="active")
        recent.append(iso(now))
        backoff = min(settings.max_backoff_seconds, 2.0 ** (len(recent) - 1))
        await self._storage.save_watch(
            ReleaseWatch(record.id, tuple(recent), iso(now + timedelta(seconds=backoff)), False)
        )
        await self._incident(
            report,
            f"restart:{record.id}:{iso(now)}",
            record.bot_name,
            "restarted",
            f"Release #{record.number} of **{record.bot_name}** had stopped ({reason}): it was "
            f"started again (restart {len(recent)} of {settings.restart_limit} allowed in "
            f"{format_seconds(window.total_seconds())}).",
            release_number=record.number,
            workflow_id=record.workflow_id,
        )
        report.restarted.append(release.marker)

    async def _incident(
        self,
        report: ReconcileReport,
        key: str,
        bot_name: str,
        kind: str,
        message: str,
        *,
        release_number: int | None,
        workflow_id: str | None,
    ) -> None:
        # Reported whether new or not: a retried round must not lose it on its way out.
        report.incidents.append(
            IncidentNote(
                key=key,
                bot_name=bot_name,
                kind=kind,
                message=message,
                release_number=release_number,
                workflow_id=workflow_id,
            )
        )
        if await self._storage.record_incident(
            key=key,
            bot_name=bot_name,
            kind=kind,
            message=message,
            release_number=release_number,
            workflow_id=workflow_id,
        ):
            log.warning("release_incident", kind=kind, bot=bot_name, release=release_number)


def parse_marker(marker: str) -> tuple[str, int | None, str | None]:
    """(bot, release number, workflow id) of a marker `bot#N@workflow~installation`."""
    head, _, _ = marker.partition("~")
    bot_and_number, _, workflow_id = head.partition("@")
    bot_name, _, number = bot_and_number.partition("#")
    return bot_name, int(number) if number.isdigit() else None, workflow_id or None


def format_seconds(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} s"
