"""Tells the board when a deployment's workflow changed, so that it never polls for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode

from workflows.deployment_client import DeploymentClient

log = structlog.get_logger(__name__)

CHANGE_EVENTS = frozenset({EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED})
CLOSE_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
)
RETRY_FIRST, RETRY_MAX = 1.0, 30.0

# Called with the workflow id and whether the workflow closed.
OnChange = Callable[[str, bool], None]


class ChangeFeed:
    def __init__(self, deployments: DeploymentClient, on_change: OnChange) -> None:
        self._deployments = deployments
        self._on_change = on_change
        self._watches: dict[str, asyncio.Task[None]] = {}
        self.polls = 0  # history long polls made (answered, empty or not)

    def watch(self, workflow_id: str) -> None:
        """Follow `workflow_id` until it closes (or `forget`); a second call does nothing."""
        task = self._watches.get(workflow_id)
        if task is None or task.done():
            self._watches[workflow_id] = asyncio.create_task(
                self._follow(workflow_id), name=f"shipcord-watch-{workflow_id}"
            )

    def watching(self, workflow_id: str) -> bool:
        task = self._watches.get(workflow_id)
        return task is not None and not task.done()

    def forget(self, workflow_id: str) -> None:
        task = self._watches.pop(workflow_id, None)
        if task is not None:
            task.cancel()

    def __len__(self) -> int:
        return sum(1 for task in self._watches.values() if not task.done())

    async def close(self) -> None:
        tasks = list(self._watches.values())
        self._watches.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, workflow_id: str) -> None:
        handle = self._deployments.handle(workflow_id)
        token: bytes | None = None
        backoff = RETRY_FIRST
        with structlog.contextvars.bound_contextvars(workflow_id=workflow_id):
            while True:
                pages = handle.fetch_history_events(next_page_token=token, wait_new_event=True)
                try:
                    await pages.fetch_next_page()
                except RPCError as error:
                    if error.status == RPCStatusCode.NOT_FOUND:
                        return  # not started yet, or gone: the board's passes decide
                    log.warning("change_feed_failed", error=str(error))
                    # Backing off from a server that fails is waiting for time to pass.
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX)
                    continue
                backoff = RETRY_FIRST
                self.polls += 1
                events = pages.current_page or []
                closed = any(event.event_type in CLOSE_EVENTS for event in events)
                if closed or any(event.event_type in CHANGE_EVENTS for event in events):
                    self._on_change(workflow_id, closed)
                token = pages.next_page_token
                if closed or not token:
                    return
