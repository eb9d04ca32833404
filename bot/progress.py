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
from typing import TYPE_CHECKING, Any

import discord
import structlog
from temporalio.service import RPCError

from bot.notifications import notify_failure
from bot.pacing import ChannelPacer, Priority
from bot.render import final_state, parse_timestamp, render_final, render_running
from bot.views import progress_view
from storage.records import DeploymentRecord
from workflows.client import DeploymentNotFound
from workflows.models import DeploymentResult, DeploymentState, DeploymentStatus

if TYPE_CHECKING:
    from bot.client import ShipcordBot

try:  # metrics are optional: the board works without them
    from shipcord import metrics
except ImportError:  # pragma: no cover
    metrics = None  # type: ignore[assignment]

log = structlog.get_logger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
# Closed deployments older than this are not finalised any more (e.g. a first start on an
# old database): their messages are long out of anyone's sight.
FINALISE_HORIZON = timedelta(days=2)
# A row may be written just before its workflow is started: not found is no verdict yet.
START_GRACE = timedelta(minutes=1)


# -- The board -----------------------------------------------------------------------------


class ProgressBoard:
    def __init__(
        self,
        bot: ShipcordBot,
        *,
        interval: float,
        pacer: ChannelPacer,
        query_concurrency: int = 8,
    ) -> None:
        self._bot = bot
        self.interval = interval
        self.pacer = pacer
        self._queries = asyncio.Semaphore(query_concurrency)
        self._rendered: dict[str, str] = {}  # workflow id -> text last sent
        self._last_status: dict[str, DeploymentStatus] = {}
        self._held: set[str] = set()  # /deploy is posting these deployments' messages
        self._posting: set[str] = set()  # the board is posting these deployments' messages
        self._finalising: set[str] = set()
        self.forbidden_channels: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.passes = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="shipcord-progress-board")

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

    def forbid_channel(self, channel_id: str) -> None:
        if channel_id not in self.forbidden_channels:
            self.forbidden_channels.add(channel_id)
            log.warning("progress_channel_forbidden", channel_id=channel_id)

    def last_status(self, workflow_id: str) -> DeploymentStatus | None:
        return self._last_status.get(workflow_id)

    async def _run(self) -> None:
        await self._bot.wait_until_ready()
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
        records = await self._bot.storage.list_deployments_needing_render(
            finished_since=horizon.isoformat(timespec="milliseconds")
        )
        if metrics is not None:
            metrics.open_deployments.set(sum(1 for record in records if record.is_open))
        await asyncio.gather(*(self._visit(record) for record in records))
        self.passes += 1

    async def _visit(self, record: DeploymentRecord) -> None:
        workflow_id = record.workflow_id
        if (
            workflow_id in self._held
            or workflow_id in self._posting
            or workflow_id in self._finalising
            or self.pacer.is_busy(workflow_id)
            or (record.channel_id is not None and record.channel_id in self.forbidden_channels)
        ):
            return
        with structlog.contextvars.bound_contextvars(
            workflow_id=workflow_id, guild_id=record.guild_id
        ):
            if not record.is_open:
                # The workflow's last activity closed the row: its outcome is in the row.
                result = DeploymentResult(
                    success=record.state == DeploymentState.SUCCEEDED,
                    state=_closed_state(record.state),
                    error=record.error,
                )
                self._finalise(record, result)
                return
            try:
                async with self._queries:
                    snapshot = await self._bot.deployments.snapshot(workflow_id)
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
            except (RPCError, OSError, RuntimeError) as error:
                log.warning("progress_query_failed", error=str(error))
                return
            if not snapshot.is_open:
                self._finalise(record, snapshot.result or _unknown_result())
                return
            status = snapshot.status
            if status is not None:
                self._last_status[workflow_id] = status
            text = render_running(
                record, status, workflow_url=self._bot.settings.workflow_url(workflow_id)
            )
            if record.message_id is None:
                # The row was read before the query: /deploy may have posted meanwhile.
                fresh = await self._bot.storage.get_deployment(workflow_id)
                if fresh is None or workflow_id in self._held:
                    return
                record = fresh
            if record.message_id is None:
                if record.channel_id is not None and not self.pacer.is_busy(f"{workflow_id}:post"):
                    self._spawn(self.post_progress_message(record, text=text))
                return
            if self._rendered.get(workflow_id) == text:
                return
            state = status.state if status else DeploymentState.RUNNING
            self._submit_edit(record, text, progress_view(workflow_id, state), Priority.UPDATE)

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
            record, None, workflow_url=self._bot.settings.workflow_url(record.workflow_id)
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
            self.forbid_channel(channel_id)
            return None
        except discord.HTTPException as error:
            log.warning("progress_post_failed", status=error.status, error=str(error))
            return None
        await self._bot.storage.set_progress_message(
            record.workflow_id, channel_id=channel_id, message_id=str(message.id)
        )
        self._rendered[record.workflow_id] = content
        return message

    def _channel(self, record: DeploymentRecord) -> discord.PartialMessageable:
        assert record.channel_id is not None
        return self._bot.get_partial_messageable(
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
                await self._bot.storage.clear_progress_message(record.workflow_id)
                return False
            except discord.Forbidden:
                self.forbid_channel(str(record.channel_id))
                return False
            self._rendered[record.workflow_id] = text
            if metrics is not None:
                metrics.progress_edits_total.inc()
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
        # Re-read: the pass's copy may predate the message id or the notification claim.
        record = await self._bot.storage.get_deployment(workflow_id) or record
        if result.release_number is None:
            # Finalised from the row (the workflow closed it): the release is in storage.
            release = await self._bot.storage.get_release_of_workflow(workflow_id)
            if release is not None:
                result = result.model_copy(update={"release_number": release.number})
        state = final_state(result)
        last_status = self._last_status.get(workflow_id)
        finished_at = parse_timestamp(record.finished_at) or datetime.now(UTC)
        if record.channel_id is not None and record.channel_id not in self.forbidden_channels:
            text = render_final(
                record,
                result,
                finished_at=finished_at,
                last_status=last_status,
                workflow_url=self._bot.settings.workflow_url(workflow_id),
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
            notified = await notify_failure(
                self._bot,
                self.pacer,
                record,
                error=result.error or record.error,
                last_status=last_status,
            )
            if not notified:
                return  # the next pass tries again, with the same nonces
        first_close = await self._bot.storage.close_deployment(
            workflow_id, state=state.value, error=result.error
        )
        await self._bot.storage.mark_message_final(workflow_id)
        self._rendered.pop(workflow_id, None)
        self._last_status.pop(workflow_id, None)
        log.info("deployment_finalised", state=state.value, closed_here=first_close)
        if metrics is not None:
            metrics.deployments_ended_total.labels(outcome=state.value).inc()
            started = parse_timestamp(record.created_at)
            if started is not None:
                metrics.deployment_duration_seconds.observe(
                    max(0.0, (finished_at - started).total_seconds())
                )


def _closed_state(state: str) -> DeploymentState:
    try:
        parsed = DeploymentState(state)
    except ValueError:
        return DeploymentState.FAILED
    return parsed if parsed.is_final else DeploymentState.FAILED


def _younger_than(record: DeploymentRecord, age: timedelta) -> bool:
    created = parse_timestamp(record.created_at)
    return created is not None and datetime.now(UTC) - created < age


def _unknown_result() -> DeploymentResult:
    return DeploymentResult(
        success=False, state=DeploymentState.FAILED, error="The workflow ended without a result."
    )
