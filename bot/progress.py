"""The progress board: keeps every deployment's progress message in step with its workflow.

Each pass reads the deployments that still need attention from SQLite (open ones, and
closed ones whose message has not got its final form yet), asks Temporal about the open
ones (`snapshot`: describe first, query only while running) with bounded concurrency, and
hands an edit to the channel's pacer only when the rendered text changed. A deployment
whose previous edit still waits in the pacer is not queried again: queries never outpace
what the channel can take, and the newest render wins once its turn comes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import structlog
from temporalio.service import RPCError

from bot.channels import ForbiddenChannels
from bot.config import FrontEndConfig
from bot.meter import FrontEndMeter
from bot.notifications import FailureNotifier
from bot.pacing import ChannelPacer, Priority
from bot.render import parse_timestamp, render_final, render_running
from bot.rows import closed_result
from bot.views import progress_view
from storage import DeploymentRecord, Storage
from workflows.client import DeploymentClient, DeploymentNotFound
from workflows.models import DeploymentResult, DeploymentState, DeploymentStatus

log = structlog.get_logger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
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


# -- The board -----------------------------------------------------------------------------


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
        pacer: ChannelPacer,
        meter: FrontEndMeter,
        query_concurrency: int = 8,
    ) -> None:
        self._client = client
        self._storage = storage
        self._deployments = deployments
        self._config = config
        self._meter = meter
        self.interval = config.progress_interval
        self.pacer = pacer
        self.forbidden_channels = ForbiddenChannels()
        self._notifier = FailureNotifier(
            client=client,
            storage=storage,
            pacer=pacer,
            config=config,
            forbidden=self.forbidden_channels,
        )
        self._queries = asyncio.Semaphore(query_concurrency)
        self._rendered: dict[str, str] = {}  # workflow id -> text last sent
        self._last_status: dict[str, DeploymentStatus] = {}
        self._held: set[str] = set()  # /deploy is posting these deployments' messages
        self._posting: set[str] = set()  # the board is posting these deployments' messages
        self._finalising: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._discovered_until: datetime | None = None
        self.passes = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="shipcord-progress-board")
            self._spawn(self._discover_forever())

    async def stop(self) -> None:
        tasks = [task for task in (self._task, *self._background) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        await self.pacer.close()

    def wake(self) -> None:
        """Run the next pass now (after a command changed a deployment)."""
        self._wake.set()

    @contextlib.contextmanager
    def hold(self, workflow_id: str) -> Iterator[None]:
        """Keep the board off a deployment while /deploy posts its message."""
        self._held.add(workflow_id)
        try:
            yield
        finally:
            self._held.discard(workflow_id)

    def last_status(self, workflow_id: str) -> DeploymentStatus | None:
        return self._last_status.get(workflow_id)

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

    # -- one pass -------------------------------------------------------------------------

    async def run_pass(self) -> None:
        horizon = datetime.now(UTC) - FINALISE_HORIZON
        records = await self._storage.list_deployments_needing_render(
            finished_since=horizon.isoformat(timespec="milliseconds")
        )
        self._meter.open_deployments(sum(1 for record in records if record.is_open))
        await asyncio.gather(*(self._visit(record) for record in records))
        self.passes += 1

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

    async def _visit(self, record: DeploymentRecord) -> None:
        workflow_id = record.workflow_id
        if (
            workflow_id in self._held
            or workflow_id in self._posting
            or workflow_id in self._finalising
            or self.pacer.is_busy(workflow_id)
        ):
            return
        with structlog.contextvars.bound_contextvars(
            workflow_id=workflow_id, guild_id=record.guild_id
        ):
            if not record.is_open:
                self._finalise(record, closed_result(record))
                return
            try:
                async with self._queries, asyncio.timeout(QUERY_TIMEOUT):
                    snapshot = await self._deployments.snapshot(workflow_id)
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
            if not snapshot.is_open:
                self._finalise(record, snapshot.result or _unknown_result())
                return
            status = snapshot.status
            if status is None:
                return  # no worker answers its query yet: the message stays as it was
            if status.state.is_final:
                # Its last step is done but the workflow has not closed yet: the final form
                # comes from its result, on a pass that sees it closed.
                return
            self._last_status[workflow_id] = status
            if record.channel_id is None or record.channel_id in self.forbidden_channels:
                return
            text = render_running(
                record, status, workflow_url=self._config.workflow_url(workflow_id)
            )
            if record.message_id is None:
                # The row was read before the query: /deploy may have posted meanwhile.
                fresh = await self._storage.get_deployment(workflow_id)
                if fresh is None or workflow_id in self._held:
                    return
                record = fresh
            if record.message_id is None:
                if not self.pacer.is_busy(f"{workflow_id}:post"):
                    self._spawn(self.post_progress_message(record, text=text))
                return
            if self._rendered.get(workflow_id) == text:
                return
            self._submit_edit(
                record, text, progress_view(workflow_id, status.state), Priority.UPDATE
            )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- messages -------------------------------------------------------------------------

    async def post_progress_message(
        self, record: DeploymentRecord, *, text: str | None = None, final: bool = False
    ) -> discord.Message | None:
        """Post the deployment's progress message and store its id; None when not allowed.

        Until the id is stored, passes leave the deployment alone: a pass that saw no
        message would post a second one, or finalise without editing this one.
        """
        self._posting.add(record.workflow_id)
        try:
            return await self._post_progress_message(record, text=text, final=final)
        finally:
            self._posting.discard(record.workflow_id)

    async def _post_progress_message(
        self, record: DeploymentRecord, *, text: str | None, final: bool
    ) -> discord.Message | None:
        assert record.channel_id is not None
        channel_id = record.channel_id
        content = text or render_running(
            record, None, workflow_url=self._config.workflow_url(record.workflow_id)
        )
        channel = self._channel(record)

        view = None if final else progress_view(record.workflow_id, DeploymentState.RUNNING)

        async def send() -> discord.Message:
            if view is None:
                return await channel.send(content, allowed_mentions=NO_MENTIONS)
            return await channel.send(content, view=view, allowed_mentions=NO_MENTIONS)

        try:
            message: discord.Message = await self.pacer.submit(
                channel_id, f"{record.workflow_id}:post", send, priority=Priority.URGENT
            )
        except discord.Forbidden:
            self.forbidden_channels.add(channel_id)
            return None
        except discord.HTTPException as error:
            log.warning("progress_post_failed", status=error.status, error=str(error))
            return None
        await self._storage.set_progress_message(
            record.workflow_id, channel_id=channel_id, message_id=str(message.id)
        )
        self._rendered[record.workflow_id] = content
        return message

    def _channel(self, record: DeploymentRecord) -> discord.PartialMessageable:
        assert record.channel_id is not None
        return self._client.get_partial_messageable(
            int(record.channel_id),
            guild_id=int(record.guild_id) if record.guild_id else None,
            type=discord.ChannelType.text,
        )

    def _submit_edit(
        self,
        record: DeploymentRecord,
        text: str,
        view: discord.ui.View | None,
        priority: Priority,
    ) -> asyncio.Future[Any]:
        assert record.channel_id is not None and record.message_id is not None
        message = self._channel(record).get_partial_message(int(record.message_id))

        async def edit() -> bool:
            try:
                await message.edit(content=text, view=view, allowed_mentions=NO_MENTIONS)
            except discord.NotFound:
                # The message was deleted: post it again (the next pass picks it up).
                log.info("progress_message_missing")
                self._rendered.pop(record.workflow_id, None)
                await self._storage.clear_progress_message(record.workflow_id)
                return False
            except discord.Forbidden:
                self.forbidden_channels.add(str(record.channel_id))
                return False
            self._rendered[record.workflow_id] = text
            self._meter.progress_edited()
            return True

        return self.pacer.submit(record.channel_id, record.workflow_id, edit, priority=priority)

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
            self._finalising.discard(workflow_id)

    async def _finish_bound(self, record: DeploymentRecord, result: DeploymentResult) -> None:
        workflow_id = record.workflow_id
        state = result.final_state
        if record.is_open:
            # The front end records the outcome; from here on the bot is free again.
            if await self._storage.close_deployment(
                workflow_id, state=state.value, error=result.error, result=result.model_dump_json()
            ):
                started = parse_timestamp(record.created_at)
                seconds = (datetime.now(UTC) - started).total_seconds() if started else None
                self._meter.deployment_ended(state.value, seconds)
                log.info("deployment_closed", state=state.value)
        # Re-read: the pass's copy may predate the message id or the notification claim.
        record = await self._storage.get_deployment(workflow_id) or record
        last_status = self._last_status.get(workflow_id)
        finished_at = parse_timestamp(record.finished_at) or datetime.now(UTC)
        if record.channel_id is not None and record.channel_id not in self.forbidden_channels:
            text = render_final(
                record,
                result,
                finished_at=finished_at,
                last_status=last_status,
                workflow_url=self._config.workflow_url(workflow_id),
            )
            if record.message_id is None:
                # It finished before it ever had a message (started by another client).
                await self.post_progress_message(record, text=text, final=True)
            elif self._rendered.get(workflow_id) != text:
                edited = await self._submit_edit(record, text, None, Priority.FINAL)
                if not edited and record.channel_id not in self.forbidden_channels:
                    # The message was deleted: post the final form as a new one.
                    await self.post_progress_message(record, text=text, final=True)
        if state is DeploymentState.FAILED and not record.notified:
            if not await self._notifier.notify(record, result):
                return  # the next pass tries again, with the same nonces
        await self._storage.mark_message_final(workflow_id)
        self._rendered.pop(workflow_id, None)
        self._last_status.pop(workflow_id, None)
        log.info("deployment_finalised", state=state.value)


def _younger_than(record: DeploymentRecord, age: timedelta) -> bool:
    created = parse_timestamp(record.created_at)
    return created is not None and datetime.now(UTC) - created < age


def _unknown_result() -> DeploymentResult:
    return DeploymentResult(
        success=False, state=DeploymentState.FAILED, error="The workflow ended without a result."
    )
