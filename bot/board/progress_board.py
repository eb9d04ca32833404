"""The progress board: keeps every deployment's progress message in step with its workflow."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import structlog
from temporalio.service import RPCError

from bot.access.forbidden_channels import ForbiddenChannels
from bot.board.cards import Card, final_card, running_card
from bot.board.change_feed import ChangeFeed
from bot.board.closed_rows import closed_result
from bot.board.message_writer import ProgressMessages
from bot.frontend_config import FrontEndConfig
from bot.frontend_meter import FrontEndMeter
from bot.interactions.interaction_replies import InteractionReplies, ReplyMessage
from bot.notices.failure_notices import FailureNotifier
from bot.pacing import Pacer, Priority
from bot.render import parse_timestamp
from storage import DeploymentRecord, Storage
from workflows.deployment_client import DeploymentClient, DeploymentNotFound
from workflows.models import DeploymentResult, DeploymentState, DeploymentStatus
from workflows.redaction import redact

log = structlog.get_logger(__name__)

# Closed deployments older than this are not finalised any more (e.g. a first start on an
# old database): their messages are long out of anyone's sight.
FINALISE_HORIZON = timedelta(days=2)
# A row may be written just before its workflow is started: not found is no verdict yet.
START_GRACE = timedelta(minutes=1)
# How often Temporal's visibility is asked for deployments that other clients started,
# and how far back each look reaches past the previous one (visibility lags a little).
DISCOVERY_INTERVAL = timedelta(seconds=5)
DISCOVERY_OVERLAP = timedelta(minutes=1)
QUERY_TIMEOUT = 10.0
# A watched deployment still gets a full look this often (seconds): a retry's attempt
# number shows, and a change the feed could not report is caught.
REFRESH = 30.0


@dataclass
class QueryCounts:
    status_queries: int = 0
    describes: int = 0
    changes: int = 0  # changes reported by the feed


class ProgressBoard:
    """Keeps progress messages in step with Temporal, and closes rows as deployments end.

    The board is the front end's only reader of outcomes: it learns from Temporal that a
    deployment ended, records that in the deployment's row (releasing the bot for the
    next deployment), then gives the message its final form and notifies on failure.
    """

    def __init__(
        self,
        *,
        client: discord.Client,
        storage: Storage,
        deployments: DeploymentClient,
        config: FrontEndConfig,
        pacer: Pacer,
        interaction_pacer: Pacer,
        meter: FrontEndMeter,
        replies: InteractionReplies | None = None,
        query_concurrency: int = 32,
    ) -> None:
        self._client = client
        self._storage = storage
        self._deployments = deployments
        self._config = config
        self._meter = meter
        self.interval = config.progress_interval
        self.forbidden_channels = ForbiddenChannels()
        self.messages = ProgressMessages(
            client=client,
            storage=storage,
            channel_pacer=pacer,
            interaction_pacer=interaction_pacer,
            replies=InteractionReplies() if replies is None else replies,
            forbidden=self.forbidden_channels,
            meter=meter,
        )
        self._notifier = FailureNotifier(
            client=client,
            storage=storage,
            pacer=pacer,
            config=config,
            forbidden=self.forbidden_channels,
        )
        self.feed = ChangeFeed(deployments, self._changed)
        self.counts = QueryCounts()
        self._queries = asyncio.Semaphore(query_concurrency)
        # The rows as the board last read or wrote them: a change is handled without a read
        # of the database, which the worker's activities keep busy in a burst.
        self._rows: dict[str, DeploymentRecord] = {}
        self._wanted: dict[str, Card] = {}  # workflow id -> card last sent or queued
        self._last_status: dict[str, DeploymentStatus] = {}
        self._last_look: dict[str, float] = {}  # workflow id -> monotonic time
        # Scheduled deployments: nothing to show before their start (monotonic time), and
        # the feed reports the start itself, so passes do not ask before then.
        self._starts_at: dict[str, float] = {}
        self._held: set[str] = set()  # /deploy is answering with these deployments' messages
        self._posting: set[str] = set()
        self._finalising: set[str] = set()
        self._visiting: set[str] = set()
        self._dirty: dict[str, bool] = {}  # workflow id -> whether the feed saw it close
        self._dirty_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._discovered_until: datetime | None = None
        self._started_at = datetime.now(UTC)
        self._searched: set[str] = set()  # rows from before this start, looked for once
        self.passes = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="shipcord-progress-board")
            self._spawn(self._discover_forever())
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
        self._held.add(workflow_id)
        try:
            yield
        finally:
            self._held.discard(workflow_id)
            self._redo_if_dirty(workflow_id)

    def last_status(self, workflow_id: str) -> DeploymentStatus | None:
        return self._last_status.get(workflow_id)

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
        # Known here first, so that changes are shown while the row is being written.
        self._rows[workflow_id] = dataclasses.replace(record, message_id=str(message.id))
        self._last_look[workflow_id] = time.monotonic()  # the feed reports from here on
        self.messages.replies.add(workflow_id, interaction, message)
        self._wanted[workflow_id] = card
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

    def _busy(self, workflow_id: str) -> bool:
        # A held deployment whose answer is known (`answered`) may be shown already.
        held = workflow_id in self._held and workflow_id not in self._rows
        return (
            held
            or workflow_id in self._posting
            or workflow_id in self._finalising
            or workflow_id in self._visiting
        )

    # -- changes --------------------------------------------------------------------------

    def _changed(self, workflow_id: str, closed: bool) -> None:
        self.counts.changes += 1
        self._dirty[workflow_id] = self._dirty.get(workflow_id, False) or closed
        self._dirty_event.set()

    def _redo_if_dirty(self, workflow_id: str) -> None:
        if workflow_id in self._dirty:
            self._dirty_event.set()

    async def _follow_changes(self) -> None:
        # Not waiting for the gateway to be ready: an answer given meanwhile (interactions
        # come before discord.py calls itself ready) is edited through its webhook anyway.
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            for workflow_id in list(self._dirty):
                if self._busy(workflow_id):
                    continue  # handled when the board is done with it
                closed = self._dirty.pop(workflow_id)
                self._visiting.add(workflow_id)
                self._spawn(self._visit_changed(workflow_id, closed))

    async def _visit_changed(self, workflow_id: str, closed: bool) -> None:
        try:
            record = self._rows.get(workflow_id) or await self._storage.get_deployment(workflow_id)
            if record is None:
                self.feed.forget(workflow_id)
                return
            await self._look(record, full=closed)
        except Exception:
            log.exception("progress_change_failed", workflow_id=workflow_id)
        finally:
            self._visiting.discard(workflow_id)
            self._redo_if_dirty(workflow_id)

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
            if (
                workflow_id in self._held
                or self._busy(workflow_id)
                or self.messages.is_busy(workflow_id)
            ):
                continue
            self._rows[workflow_id] = record
            if not record.is_open:
                self._finalise(record, closed_result(record))
                continue
            self.feed.watch(workflow_id)
            if self._starts_at.get(workflow_id, 0) > now:
                continue
            if record.message_id is None or self._due(workflow_id, now):
                self._visiting.add(workflow_id)
                visits.append(self._visit_in_pass(record))
        await asyncio.gather(*visits)
        self.passes += 1

    def _due(self, workflow_id: str, now: float) -> bool:
        """Whether a watched deployment needs a full look: not while it waits between steps
        (paused: no activity can be retrying), else when nothing was reported of it for
        REFRESH seconds (a step that retries reports nothing)."""
        status = self._last_status.get(workflow_id)
        if status is not None and status.state is DeploymentState.PAUSED:
            return not self.feed.watching(workflow_id)
        return now - self._last_look.get(workflow_id, 0) >= REFRESH

    async def _visit_in_pass(self, record: DeploymentRecord) -> None:
        try:
            await self._look(record, full=True)
        finally:
            self._visiting.discard(record.workflow_id)
            self._redo_if_dirty(record.workflow_id)

    async def _discover_forever(self) -> None:
        await self._client.wait_until_ready()
        while True:
            try:
                if await self.discover():
                    self.wake()
            except Exception:
                log.exception("deployment_discovery_failed")
            await asyncio.sleep(DISCOVERY_INTERVAL.total_seconds())

    async def discover(self) -> int:
        """Record the deployments other Temporal clients started, found through Temporal's
        visibility; returns how many were new."""
        now = datetime.now(UTC)
        since = (
            now - FINALISE_HORIZON
            if self._discovered_until is None
            else self._discovered_until - DISCOVERY_OVERLAP
        )
        try:
            found = {
                execution.id: execution
                async for execution in self._deployments.started_since(since)
            }
        except (RPCError, OSError, RuntimeError) as error:
            log.warning("deployment_discovery_failed", error=str(error))
            return 0
        self._discovered_until = now
        adopted = 0
        for workflow_id in sorted(set(found) - await self._storage.known_workflow_ids(found)):
            try:
                request = await self._deployments.input_of(workflow_id)
            except (RPCError, OSError, RuntimeError) as error:
                log.warning(
                    "deployment_discovery_failed", workflow_id=workflow_id, error=str(error)
                )
                self._discovered_until = min(self._discovered_until, found[workflow_id].start_time)
                continue
            if request is None:
                continue  # its input was invalid: it belongs to no bot, nothing to show
            if await self._storage.adopt_deployment(
                workflow_id=workflow_id,
                bot_name=request.bot_name,
                version=request.version,
                owner_id=request.owner,
                guild_id=request.guild_id,
                channel_id=request.channel_id,
                created_at=found[workflow_id].start_time.isoformat(timespec="milliseconds"),
            ):
                adopted += 1
                log.info("deployment_discovered", workflow_id=workflow_id)
        return adopted

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
                status = await self._ask(workflow_id, full=full)
                if isinstance(status, DeploymentStatus) and status.state.is_final:
                    # It ended after the feed's report: its result says exactly how.
                    status = await self._ask(workflow_id, full=True)
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
            self._last_status[workflow_id] = status
            if not status.state.is_final:  # else its close is a moment away, and the feed's
                await self._show(record, status)

    async def _ask(
        self, workflow_id: str, *, full: bool
    ) -> DeploymentStatus | DeploymentResult | None:
        """The deployment's status, its result once closed, or None while it has none to
        give (a scheduled start, a worker that does not answer the query yet)."""
        async with self._queries, asyncio.timeout(QUERY_TIMEOUT):
            if full:
                self.counts.describes += 1
                snapshot = await self._deployments.snapshot(workflow_id)
                if not snapshot.is_open:
                    return snapshot.result or _unknown_result()
                if snapshot.scheduled_for is None:
                    self.counts.status_queries += 1
                else:
                    wait = (snapshot.scheduled_for - datetime.now(UTC)).total_seconds()
                    self._starts_at[workflow_id] = time.monotonic() + wait
                self._last_look[workflow_id] = time.monotonic()
                return snapshot.status
            self.counts.status_queries += 1
            status = await self._deployments.status(workflow_id)
            self._last_look[workflow_id] = time.monotonic()
        previous = self._last_status.get(workflow_id)
        if previous is not None and previous.step == status.step:
            status.attempt = previous.attempt  # retries are seen by full looks only
        return status

    async def _show(self, record: DeploymentRecord, status: DeploymentStatus) -> None:
        workflow_id = record.workflow_id
        if record.channel_id is None:
            return
        card = running_card(record, status, workflow_url=self._config.workflow_url(workflow_id))
        if record.message_id is None:
            # The row was read before the query: /deploy may have answered meanwhile.
            fresh = await self._storage.get_deployment(workflow_id)
            if fresh is None or workflow_id in self._held:
                return
            record = fresh
        if record.message_id is None:
            if record.channel_id not in self.forbidden_channels:
                self._spawn(self._post(record, card, Priority.URGENT))
            return
        if self._wanted.get(workflow_id) == card:
            return
        self._submit(record, card, Priority.UPDATE)

    def _submit(self, record: DeploymentRecord, card: Card, priority: Priority) -> None:
        workflow_id = record.workflow_id
        self._wanted[workflow_id] = card
        edited = self.messages.edit(record, card, priority)

        def forget_unless_edited(done: asyncio.Future[bool]) -> None:
            failed = done.cancelled() or done.exception() is not None or not done.result()
            if failed:
                self._rows.pop(workflow_id, None)  # its message may be gone: read it again
                if self._wanted.get(workflow_id) == card:
                    del self._wanted[workflow_id]  # so that the next look sends it again

        edited.add_done_callback(forget_unless_edited)

    async def _post(self, record: DeploymentRecord, card: Card, priority: Priority) -> None:
        """Give the deployment a message in its channel: the one a crash left unrecorded,
        else a new one. Until its id is stored, the board keeps off the deployment (a look
        that saw no message would post a second one)."""
        workflow_id = record.workflow_id
        self._posting.add(workflow_id)
        try:
            found = await self._find_lost(record)
            if found is not None:
                self._wanted[workflow_id] = card
                record = dataclasses.replace(record, message_id=str(found.id))
                if not await self.messages.edit(record, card, priority):
                    self._wanted.pop(workflow_id, None)
            elif await self.messages.post(record, card) is not None:
                self._wanted[workflow_id] = card
        finally:
            self._rows.pop(workflow_id, None)  # it has a message id now: read it again
            self._posting.discard(workflow_id)
            self._redo_if_dirty(workflow_id)

    async def _find_lost(self, record: DeploymentRecord) -> discord.Message | None:
        """A row from before this process started may have a message whose id a crash
        kept from being stored: look for it (once) before posting another."""
        created = parse_timestamp(record.created_at)
        if record.workflow_id in self._searched or created is None or created > self._started_at:
            return None
        self._searched.add(record.workflow_id)
        return await self.messages.find(record)

    # -- finished deployments -------------------------------------------------------------

    def _finalise(self, record: DeploymentRecord, result: DeploymentResult) -> None:
        self._finalising.add(record.workflow_id)
        self._spawn(self._finish(record, result))

    async def _finish(self, record: DeploymentRecord, result: DeploymentResult) -> None:
        workflow_id = record.workflow_id
        try:
            with structlog.contextvars.bound_contextvars(
                workflow_id=workflow_id, guild_id=record.guild_id
            ):
                await self._finish_bound(record, result)
        except Exception:
            log.exception("progress_finalise_failed", workflow_id=workflow_id)
        finally:
            self._rows.pop(workflow_id, None)
            self._finalising.discard(workflow_id)

    async def _finish_bound(self, record: DeploymentRecord, result: DeploymentResult) -> None:
        workflow_id = record.workflow_id
        state = result.final_state
        if record.is_open:
            # The front end records the outcome; from here on the bot is free again.
            if await self._storage.close_deployment(
                workflow_id,
                state=state.value,
                # SQLite is an exit too: the error is redacted (a client's result may not be).
                error=redact(result.error) if result.error else None,
                result=redact(result.model_dump_json()),
            ):
                started = parse_timestamp(record.created_at)
                seconds = (datetime.now(UTC) - started).total_seconds() if started else None
                self._meter.deployment_ended(state.value, seconds)
                log.info("deployment_closed", state=state.value)
        self.feed.forget(workflow_id)
        # Re-read: the look's copy may predate the message id or the notification claim.
        record = await self._storage.get_deployment(workflow_id) or record
        finished_at = parse_timestamp(record.finished_at) or datetime.now(UTC)
        if record.channel_id is not None:
            card = final_card(
                record,
                result,
                finished_at=finished_at,
                last_status=self._last_status.get(workflow_id),
                workflow_url=self._config.workflow_url(workflow_id),
            )
            if record.message_id is None:
                if record.channel_id not in self.forbidden_channels:
                    # It finished before it ever had a message (started by another client).
                    await self._post(record, card, Priority.FINAL)
            elif self._wanted.get(workflow_id) != card:
                self._wanted[workflow_id] = card
                if not await self.messages.edit(record, card, Priority.FINAL):
                    self._wanted.pop(workflow_id, None)
                    if record.channel_id not in self.forbidden_channels:
                        # The message was deleted: post the final form as a new one.
                        await self.messages.post(record, card)
        if state is DeploymentState.FAILED and not record.notified:
            if not await self._notifier.notify(record, result):
                return  # the next pass tries again, with the same nonces
        await self._storage.mark_message_final(workflow_id)
        self.messages.replies.drop(workflow_id)
        self._wanted.pop(workflow_id, None)
        self._last_status.pop(workflow_id, None)
        self._last_look.pop(workflow_id, None)
        self._starts_at.pop(workflow_id, None)
        self._dirty.pop(workflow_id, None)
        log.info("deployment_finalised", state=state.value)


def _younger_than(record: DeploymentRecord, age: timedelta) -> bool:
    created = parse_timestamp(record.created_at)
    return created is not None and datetime.now(UTC) - created < age


def _unknown_result() -> DeploymentResult:
    return DeploymentResult(
        success=False, state=DeploymentState.FAILED, error="The workflow ended without a result."
    )
