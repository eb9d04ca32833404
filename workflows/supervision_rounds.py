"""Supervision: what should run (active releases) against what runs, one round at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import structlog
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from storage import ReleaseRecord, ReleaseWatch, Storage
from workflows.redaction import redact
from workflows.release_operator import ReleaseOperator
from workflows.release_view import Release
from workflows.runtimes import ReleaseHandle, Runtime

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

    async def record_once(self, storage: Storage) -> bool:
        """Store it under its key (its fields are the stored incident's); True when it is new."""
        return await storage.record_incident(**self.model_dump())


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
        # What was last logged about each thing a round could not handle (a release, a
        # runtime, a copy found running), so that one failing every round is logged once,
        # and again only when its error changes or after it was handled since.
        self._logged: dict[str, str] = {}

    @activity.defn
    async def reconcile(self, settings: SupervisionSettings) -> ReconcileReport:
        """One round. Each release is handled on its own: one that cannot be (its recorded
        target unreadable or missing, its runtime failing) is logged once, told as an
        incident when no retry can heal it, and the rest of the round goes on."""
        report = ReconcileReport()
        now = datetime.now(UTC)
        wanted: set[str] = set()
        busy_bots: set[str] = set()
        for record in await self._storage.releases_with_status("pending", "running"):
            marker = self._releases.marker(record)
            try:
                open_deployment = await self._deployment_open(record.workflow_id)
            except Exception as error:
                # Whether its deployment still runs is unknown: leave the bot alone.
                wanted.add(marker)
                busy_bots.add(record.bot_name)
                await self._trouble(record, error, report)
                continue
            if open_deployment:
                wanted.add(marker)
                busy_bots.add(record.bot_name)
                self._handled(record)
                continue
            await self._release_step(record, report, self._retire_abandoned, report)
        for record in await self._storage.releases_with_status("active"):
            # Wanted whether or not the rest of its row can be read: a copy that runs is
            # never taken for an orphan because its target is broken.
            wanted.add(self._releases.marker(record))
            if record.bot_name not in busy_bots:
                await self._release_step(record, report, self._keep_running, settings, now, report)
        problems: dict[str, Exception] = {}
        running = await self._releases.running_markers(problems)
        for name, problem in problems.items():
            self._log_once(f"runtime:{name}", "supervision_runtime_failed", problem, runtime=name)
        for name in self._releases.runtimes.keys() - problems.keys():
            self._logged.pop(f"runtime:{name}", None)
        for marker, (runtime, handle) in running.items():
            if marker in wanted or parse_marker(marker)[0] in busy_bots:
                continue
            try:
                await self._sweep(marker, runtime, handle, report)
            except Exception as error:
                self._log_once(f"orphan:{marker}", "orphan_stop_failed", error, marker=marker)
        return report

    async def _sweep(
        self, marker: str, runtime: Runtime, handle: ReleaseHandle, report: ReconcileReport
    ) -> None:
        bot_name, number, workflow_id = parse_marker(marker)
        if await self._wanted_since(bot_name, number, workflow_id):
            return
        await runtime.stop(handle)
        self._logged.pop(f"orphan:{marker}", None)
        await self._incident(
            report,
            IncidentNote(
                key=f"orphan:{marker}:{handle.pid or handle.container_id}",
                bot_name=bot_name,
                kind="orphan_stopped",
                message=f"A copy of release #{number} of **{bot_name}** was running although "
                "no deployment or active release wants it: it was stopped.",
                release_number=number,
                workflow_id=workflow_id,
            ),
        )
        report.stopped.append(marker)

    async def _release_step(
        self,
        record: ReleaseRecord,
        report: ReconcileReport,
        step: Callable[..., Awaitable[None]],
        *args: Any,
    ) -> None:
        """Run one release's part of the round, isolated from the others'."""
        try:
            await step(self._releases.release(record), *args)
        except Exception as error:
            await self._trouble(record, error, report)
        else:
            self._handled(record)

    def _handled(self, record: ReleaseRecord) -> None:
        self._logged.pop(f"release:{record.id}", None)

    async def _trouble(
        self, record: ReleaseRecord, error: Exception, report: ReconcileReport
    ) -> None:
        """A release this round could not handle: logged once; told once when it will not
        heal by itself (a retry cannot fix a release recorded without its target)."""
        reason = describe_error(error)
        self._log_once(
            f"release:{record.id}",
            "release_not_supervised",
            error,
            bot=record.bot_name,
            release=record.number,
        )
        if heals_by_retry(error):
            return
        digest = hashlib.sha256(reason.encode()).hexdigest()[:12]
        await self._release_incident(
            report,
            record,
            f"unsupervised:{record.id}:{digest}",
            "not_supervised",
            f"Release #{record.number} of **{record.bot_name}** cannot be supervised "
            f"({reason}): it is not started again if it stops. Deploy the bot again to "
            "fix it.",
        )

    def _log_once(self, key: str, event: str, error: Exception, **facts: Any) -> None:
        reason = describe_error(error)
        if self._logged.get(key) == reason:
            return
        self._logged[key] = reason
        log.warning(event, error=reason, **facts)

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
        await self._release_incident(
            report,
            record,
            f"abandoned:{record.id}",
            "abandoned_stopped",
            f"Release #{record.number} of **{record.bot_name}** was left running by "
            f"deployment `{record.workflow_id}`, which ended without finishing (it was "
            "terminated): it was stopped.",
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
            await self._release_incident(
                report,
                record,
                f"crash-loop:{record.id}:{recent[0]}",
                "crash_looping",
                f"Release #{record.number} of **{record.bot_name}** keeps stopping ({reason}): "
                f"after {len(recent)} restarts in {format_seconds(window.total_seconds())} "
                "it is left stopped. The bot is DOWN until it is deployed again.",
            )
            report.crash_looping.append(release.marker)
            return
        await self._releases.ensure_running(release, status="active")
        recent.append(iso(now))
        backoff = min(settings.max_backoff_seconds, 2.0 ** (len(recent) - 1))
        await self._storage.save_watch(
            ReleaseWatch(record.id, tuple(recent), iso(now + timedelta(seconds=backoff)), False)
        )
        await self._release_incident(
            report,
            record,
            f"restart:{record.id}:{iso(now)}",
            "restarted",
            f"Release #{record.number} of **{record.bot_name}** had stopped ({reason}): it was "
            f"started again (restart {len(recent)} of {settings.restart_limit} allowed in "
            f"{format_seconds(window.total_seconds())}).",
        )
        report.restarted.append(release.marker)

    async def _release_incident(
        self, report: ReconcileReport, record: ReleaseRecord, key: str, kind: str, message: str
    ) -> None:
        note = IncidentNote(
            key=key,
            bot_name=record.bot_name,
            kind=kind,
            message=message,
            release_number=record.number,
            workflow_id=record.workflow_id,
        )
        await self._incident(report, note)

    async def _incident(self, report: ReconcileReport, note: IncidentNote) -> None:
        # Reported whether new or not: a retried round must not lose it on its way out.
        report.incidents.append(note)
        if await note.record_once(self._storage):
            log.warning(
                "release_incident", kind=note.kind, bot=note.bot_name, release=note.release_number
            )


def describe_error(error: BaseException) -> str:
    """One redacted line saying what went wrong, never the data that did not fit (a
    target's values may hold secrets)."""
    if isinstance(error, pydantic.ValidationError):
        return (
            f"its recorded {error.title} cannot be read: {error.error_count()} "
            f"problem{'s' if error.error_count() != 1 else ''}"
        )
    if isinstance(error, ApplicationError):
        text = error.message
    else:
        text = f"{type(error).__name__}: {error}"
    line = " ".join(redact(text).split())
    return line if len(line) <= 300 else line[:299] + "…"


def heals_by_retry(error: BaseException) -> bool:
    """Whether a later round may well succeed (Temporal or a runtime away for a while)."""
    if isinstance(error, ApplicationError):
        return not error.non_retryable
    return isinstance(error, RPCError | OSError | TimeoutError)


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
