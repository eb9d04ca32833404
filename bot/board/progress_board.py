"""The progress board: keeps every deployment's progress message in step with its workflow."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import structlog
from temporalio.service import RPCError

from bot.board.cards import Card, final_card, running_card
from bot.board.change_feed import ChangeFeed
from bot.board.closed_rows import closed_result
from bot.board.deployment_watch import StatusReader, TrackedDeployment
from bot.board.message_writer import ProgressMessages
from bot.frontend_config import FrontEndConfig
from bot.frontend_meter import FrontEndMeter
from bot.interactions.interaction_replies import ReplyMessage
from bot.notices.failure_notices import FailureNotifier
from bot.pacing import Priority
from bot.render import parse_timestamp
from storage import DeploymentRecord, Storage
from workflows.deployment_client import DeploymentNotFound, with_last_status
from workflows.deployment_service import DeploymentService
from workflows.models import DeploymentResult, DeploymentState, DeploymentStatus

log = structlog.get_logger(__name__)

# Closed deployments older than this are not finalised any more (e.g. a first start on an
# old database): their messages are long out of anyone's sight.
FINALISE_HORIZON = timedelta(days=2)
# A row may be written just before its workflow is started: not found is no verdict yet.
START_GRACE = timedelta(minutes=1)
# A watched deployment still gets a full look this often (seconds): a retry's attempt
# number shows, and a change the feed could not report is caught.
REFRESH = 30.0


class ProgressBoard:
    """Keeps progress messages in step with Temporal: the front end's reader of outcomes,
    which has the service close each row, then gives its message the final form."""

    def __init__(
        self,
        *,
        client: discord.Client,
        storage: Storage,
        service: DeploymentService,
        config: FrontEndConfig,
        messages: ProgressMessages,
        notifier: FailureNotifier,
        meter: FrontEndMeter,
        query_concurrency: int = 32,
    ) -> None:
        self._client = client
        self._storage = storage
        self._service = service
        self._deployments = service.deployments
        self._config = config
        self._meter = meter
        self.interval = config.progress_interval
        self.messages = messages
        self.forbidden_channels = messages.forbidden
        self._notifier = notifier
        self.feed = ChangeFeed(service.deployments, self._changed)
        self.reader = StatusReader(service.deployments, concurrency=query_concurrency)
        self.counts = self.reader.counts
        self._tracked: dict[str, TrackedDeployment] = {}
        self._dirty_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._started_at = datetime.now(UTC)
        self.passes = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="shipcord-progress-board")
            self._spawn(self._follow_changes())

    async def stop(self) -> None:
        tasks = [task for task in (self._task, *self._background) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        await self.feed.close()
        await self.messages.channel_pacer.close()
        await self.messages.interaction_pacer.close()

    def wake(self) -> None:
        """Run the next pass now (after a command changed a deployment)."""
        self._wake.set()

    @contextlib.contextmanager
    def hold(self, workflow_id: str) -> Iterator[None]:
        """Keep the board off a deployment while /deploy answers with its message."""
        self._track(workflow_id).held = True
        try:
            yield
        finally:
            tracked = self._tracked.get(workflow_id)
            if tracked is not None:
                tracked.held = False
            self._redo_if_changed(workflow_id)

    def last_status(self, workflow_id: str) -> DeploymentStatus | None:
        tracked = self._tracked.get(workflow_id)
        return tracked.last_status if tracked is not None else None

    def card_for(self, record: DeploymentRecord) -> Card:
        """The card of a deployment that has just started."""
        return running_card(
            record, None, workflow_url=self._config.workflow_url(record.workflow_id)
        )

    async def answered(
        self,
        record: DeploymentRecord,
        *,
        interaction: discord.Interaction[Any],
        message: ReplyMessage,
        card: Card,
    ) -> None:
        """/deploy answered with the progress message: edit it through the interaction."""
        assert record.channel_id is not None
        workflow_id = record.workflow_id
        tracked = self._track(workflow_id)
        # Known here first, so that changes are shown while the row is being written.
        tracked.row = dataclasses.replace(record, message_id=str(message.id))
        tracked.last_look = time.monotonic()  # the feed reports from here on
        tracked.wanted = tracked.accepted = card
        self.messages.replies.add(workflow_id, interaction, message)
        self.feed.watch(workflow_id)
        await self._storage.set_progress_message(
            workflow_id, channel_id=record.channel_id, message_id=str(message.id)
        )

    async def _run(self) -> None:
        await self._client.wait_until_ready()
        while True:
            self._wake.clear()
            try:
                await self.run_pass()
            except Exception:  # one bad pass (database locked, a bug) must not stop the board
                log.exception("progress_pass_failed")
            with contextlib.suppress(TimeoutError):
                # The board's period; a command that changed something wakes it early.
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _track(self, workflow_id: str) -> TrackedDeployment:
        tracked = self._tracked.get(workflow_id)
        if tracked is None:
            tracked = self._tracked[workflow_id] = TrackedDeployment()
        return tracked

    # -- changes --------------------------------------------------------------------------

    def _changed(self, workflow_id: str, closed: bool) -> None:
        self.counts.changes += 1
        tracked = self._track(workflow_id)
        tracked.change_closed = (tracked.change_pending and tracked.change_closed) or closed
        tracked.change_pending = True
        self._dirty_event.set()

    def _redo_if_changed(self, workflow_id: str) -> None:
        tracked = self._tracked.get(workflow_id)
        if tracked is not None and tracked.change_pending:
            self._dirty_event.set()

    async def _follow_changes(self) -> None:
        # Not waiting for the gateway to be ready: an answer given meanwhile (interactions
        # come before discord.py calls itself ready) is edited through its webhook anyway.
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            for workflow_id, tracked in list(self._tracked.items()):
                if not tracked.change_pending or tracked.busy:
                    continue  # handled when the board is done with it
                tracked.change_pending = False
                tracked.visiting = True
                self._spawn(self._visit_changed(workflow_id, tracked.change_closed))

    async def _visit_changed(self, workflow_id: str, closed: bool) -> None:
        tracked = self._track(workflow_id)
        try:
            record = tracked.row or await self._storage.get_deployment(workflow_id)
            if record is None:
                self.feed.forget(workflow_id)
                self._tracked.pop(workflow_id, None)
                return
            await self._look(record, full=closed)
        except Exception:
            log.exception("progress_change_failed", workflow_id=workflow_id)
        finally:
            tracked.visiting = False
            self._redo_if_changed(workflow_id)

    # -- passes ---------------------------------------------------------------------------

    async def run_pass(self) -> None:
        horizon = datetime.now(UTC) - FINALISE_HORIZON
        records = await self._storage.list_deployments_needing_render(
            finished_since=horizon.isoformat(timespec="milliseconds")
        )
        self._meter.open_deployments(sum(1 for record in records if record.is_open))
        now = time.monotonic()
        visits = []
        for record in records:
            workflow_id = record.workflow_id
            tracked = self._track(workflow_id)
            if tracked.held or tracked.busy or self.messages.is_busy(workflow_id):
                continue
            tracked.row = record
            if not record.is_open:
                self._finalise(record, closed_result(record))
                continue
            self.feed.watch(workflow_id)
            if tracked.starts_at > now:
                continue
            if record.message_id is None or self._due(tracked, now):
                tracked.visiting = True
                visits.append(self._visit_in_pass(record, tracked))
        await asyncio.gather(*visits)
        self.passes += 1

    def _due(self, tracked: TrackedDeployment, now: float) -> bool:
        """Whether a watched deployment needs a full look: not while it waits between steps
        (paused: no activity can be retrying), else when nothing was reported of it for
        REFRESH seconds (a step that retries reports nothing)."""
        status = tracked.last_status
        if status is not None and status.state is DeploymentState.PAUSED:
            return not self.feed.watching(status.workflow_id)
        return now - tracked.last_look >= REFRESH

    async def _visit_in_pass(self, record: DeploymentRecord, tracked: TrackedDeployment) -> None:
        try:
            await self._look(record, full=True)
        except Exception as error:
            # One deployment that cannot be read (its status does not decode) must not
            # fail the pass for the others: its message waits, as for a silent worker.
            if problem := tracked.new_problem(error):
                log.warning("progress_look_failed", workflow_id=record.workflow_id, error=problem)
        else:
            tracked.problem = None
        finally:
            tracked.visiting = False
            self._redo_if_changed(record.workflow_id)

    # -- one look at one deployment -------------------------------------------------------

    async def _look(self, record: DeploymentRecord, *, full: bool) -> None:
        """Ask Temporal about the deployment and bring its message up to date.

        `full` describes first (a closed workflow's result, a retry's attempt number);
        otherwise the feed said it changed while running, and one query says how.
        """
        workflow_id = record.workflow_id
        with structlog.contextvars.bound_contextvars(
            workflow_id=workflow_id, guild_id=record.guild_id
        ):
            if not record.is_open:
                self._finalise(record, closed_result(record))
                return
            try:
                tracked = self._track(workflow_id)
                status = await self.reader.ask(workflow_id, tracked, full=full)
                if isinstance(status, DeploymentStatus) and status.state.is_final:
                    # It ended after the feed's report: its result says exactly how.
                    status = await self.reader.ask(workflow_id, tracked, full=True)
            except DeploymentNotFound:
                if _younger_than(record, START_GRACE):
                    return  # its start may still be on its way to Temporal
                log.warning("progress_workflow_missing")
                result = DeploymentResult(
                    success=False,
                    state=DeploymentState.FAILED,
                    error="The deployment's workflow no longer exists in Temporal.",
                )
                self._finalise(record, result)
                return
            except (RPCError, OSError, RuntimeError, TimeoutError) as error:
                log.warning("progress_query_failed", error=str(error))
                return
            if isinstance(status, DeploymentResult):
                self._finalise(record, status)
                return
            if status is None:
                return  # scheduled, or no worker answers its query yet: the message waits
            self._track(workflow_id).last_status = status
            if not status.state.is_final:  # else its close is a moment away, and the feed's
                await self._show(record, status)

    async def _show(self, record: DeploymentRecord, status: DeploymentStatus) -> None:
        workflow_id = record.workflow_id
        tracked = self._track(workflow_id)
        if record.channel_id is None:
            return
        record = await self._service.note_version(record, status.version)
        host_down = await self._service.waits_for_lost_host(status)
        url = self._config.workflow_url(workflow_id)
        card = running_card(record, status, workflow_url=url, host_down=host_down)
        if record.message_id is None:
            # The row was read before the query: /deploy may have answered meanwhile.
            fresh = await self._storage.get_deployment(workflow_id)
            if fresh is None or tracked.held:
                return
            record = fresh
        if record.message_id is None:
            if record.channel_id not in self.forbidden_channels:
                self._spawn(self._post(record, card, Priority.URGENT))
            return
        if tracked.wanted == card:
            return  # queued already, or accepted
        self._submit(record, tracked, card, Priority.UPDATE)

    def _submit(
        self, record: DeploymentRecord, tracked: TrackedDeployment, card: Card, priority: Priority
    ) -> None:
        tracked.wanted = card
        edited = self.messages.edit(record, card, priority)

        def settle(done: asyncio.Future[bool]) -> None:
            if not done.cancelled() and done.exception() is None and done.result():
                tracked.accepted = card
                return
            tracked.row = None  # its message may be gone: read it again
            if tracked.wanted == card:
                tracked.wanted = tracked.accepted  # so that the next look sends it again

        edited.add_done_callback(settle)

    async def _post(self, record: DeploymentRecord, card: Card, priority: Priority) -> bool:
        """Give the deployment a message in its channel; True once Discord has the card.
        Until its id is stored, the board keeps off the deployment (a look that saw no
        message would post a second one)."""
        workflow_id = record.workflow_id
        tracked = self._track(workflow_id)
        tracked.posting = True
        # A row from before this process started may have a message whose id a crash kept
        # from being stored: it is looked for (once) before another is posted.
        created = parse_timestamp(record.created_at)
        look_for_lost = not tracked.searched and created is not None and created < self._started_at
        tracked.searched = tracked.searched or look_for_lost
        try:
            shown = await self.messages.show_anew(record, card, priority, look_for_lost)
        finally:
            tracked.row = None  # it has a message id now: read it again
            tracked.posting = False
            self._redo_if_changed(workflow_id)
        if shown:
            tracked.wanted = tracked.accepted = card
        return shown

    # -- finished deployments -------------------------------------------------------------

    def _finalise(self, record: DeploymentRecord, result: DeploymentResult) -> None:
        self._track(record.workflow_id).finalising = True
        self._spawn(self._finish(record, result))

    async def _finish(self, record: DeploymentRecord, result: DeploymentResult) -> None:
        workflow_id = record.workflow_id
        tracked = self._track(workflow_id)
        try:
            with structlog.contextvars.bound_contextvars(
                workflow_id=workflow_id, guild_id=record.guild_id
            ):
                await self._finish_bound(record, result, tracked)
        except Exception:
            # Nothing was marked final: the next pass tries again.
            log.exception("progress_finalise_failed", workflow_id=workflow_id)
        finally:
            tracked.row = None
            tracked.finalising = False

    async def _finish_bound(
        self, record: DeploymentRecord, result: DeploymentResult, tracked: TrackedDeployment
    ) -> None:
        workflow_id = record.workflow_id
        state = result.final_state
        # A workflow ended in Temporal (terminated) returned nothing: where it stopped is
        # what the board last saw, recorded with the row so that it outlives a restart.
        result = with_last_status(result, tracked.last_status)
        if record.is_open and await self._service.close(record, result):
            started = parse_timestamp(record.created_at)
            seconds = (datetime.now(UTC) - started).total_seconds() if started else None
            self._meter.deployment_ended(state.value, seconds)
            log.info("deployment_closed", state=state.value)
        self.feed.forget(workflow_id)
        # Re-read: the look's copy may predate the message id or the notification claim.
        record = await self._storage.get_deployment(workflow_id) or record
        finished_at = parse_timestamp(record.finished_at) or datetime.now(UTC)
        if record.channel_id is not None and record.channel_id not in self.forbidden_channels:
            card = final_card(
                record,
                result,
                finished_at=finished_at,
                last_status=tracked.last_status,
                workflow_url=self._config.workflow_url(workflow_id),
            )
            if not await self._show_final(record, tracked, card):
                return  # Discord does not have it yet: the next pass tries again
        if state is DeploymentState.FAILED and not record.notified:
            if not await self._notifier.notify(record, result):
                return  # the next pass tries again, with the same nonces
        await self._storage.mark_message_final(workflow_id)
        self.messages.replies.drop(workflow_id)
        self._tracked.pop(workflow_id, None)
        log.info("deployment_finalised", state=state.value)

    async def _show_final(
        self, record: DeploymentRecord, tracked: TrackedDeployment, card: Card
    ) -> bool:
        """Bring the message to its final card; True once Discord accepted it (or the
        channel refuses shipcord, so that nothing more can be done)."""
        if record.message_id is None:
            # It finished before it ever had a message (started by another client).
            return await self._post(record, card, Priority.FINAL) or self._refused(record)
        if tracked.accepted == card:
            return True
        tracked.wanted = card
        if await self.messages.edit(record, card, Priority.FINAL):
            tracked.accepted = card
            return True
        if self._refused(record):
            return True
        # The message was deleted: post the final form as a new one.
        return await self._post(record, card, Priority.FINAL) or self._refused(record)

    def _refused(self, record: DeploymentRecord) -> bool:
        return record.channel_id in self.forbidden_channels


def _younger_than(record: DeploymentRecord, age: timedelta) -> bool:
    created = parse_timestamp(record.created_at)
    return created is not None and datetime.now(UTC) - created < age
