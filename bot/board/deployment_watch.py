"""What the board knows of each deployment it tracks, and how it asks Temporal about one."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.board.cards import Card
from storage import DeploymentRecord
from workflows.deployment_client import DeploymentClient
from workflows.models import DeploymentResult, DeploymentState, DeploymentStatus

QUERY_TIMEOUT = 10.0


@dataclass
class TrackedDeployment:
    """What the board knows of one deployment it keeps a message for."""

    # The row as the board last read or wrote it (None: read it again): a change is
    # handled without a read of the database, which activities keep busy in a burst.
    row: DeploymentRecord | None = None
    # The card last queued for the message, and the one Discord last accepted: only an
    # accepted final card makes the message final.
    wanted: Card | None = None
    accepted: Card | None = None
    last_status: DeploymentStatus | None = None
    last_look: float = 0.0  # monotonic time
    # A scheduled deployment has nothing to show before its start (monotonic time), and the
    # feed reports the start itself, so passes do not ask before then.
    starts_at: float = 0.0
    held: bool = False  # /deploy is answering with this deployment's message
    posting: bool = False
    finalising: bool = False
    visiting: bool = False
    # A change the feed reported and nobody handled yet; whether it saw the workflow close.
    change_pending: bool = False
    change_closed: bool = False
    searched: bool = False  # a row from before this start, its lost message looked for once
    problem: str | None = None  # why the last full look failed, as logged

    def new_problem(self, error: BaseException) -> str | None:
        """The failure of a look as one line, or None when it is the one logged already."""
        problem = f"{type(error).__name__}: {str(error).partition(chr(10))[0]}"
        if problem == self.problem:
            return None
        self.problem = problem
        return problem

    @property
    def busy(self) -> bool:
        # A held deployment whose answer is known (`answered`) may be shown already.
        return (self.held and self.row is None) or self.posting or self.finalising or self.visiting


@dataclass
class QueryCounts:
    status_queries: int = 0
    describes: int = 0
    changes: int = 0  # changes reported by the feed


class StatusReader:
    """Asks Temporal how a deployment is, a bounded number of deployments at a time."""

    def __init__(self, deployments: DeploymentClient, *, concurrency: int) -> None:
        self._deployments = deployments
        self._queries = asyncio.Semaphore(concurrency)
        self.counts = QueryCounts()

    async def ask(
        self, workflow_id: str, tracked: TrackedDeployment, *, full: bool
    ) -> DeploymentStatus | DeploymentResult | None:
        """The deployment's status, its result once closed, or None while it has none to
        give (a scheduled start, a worker that does not answer the query yet). `full`
        describes first (a closed workflow's result, a retry's attempt number)."""
        async with self._queries, asyncio.timeout(QUERY_TIMEOUT):
            if full:
                self.counts.describes += 1
                snapshot = await self._deployments.snapshot(workflow_id)
                if not snapshot.is_open:
                    return snapshot.result or unknown_result()
                if snapshot.scheduled_for is None:
                    self.counts.status_queries += 1
                else:
                    wait = (snapshot.scheduled_for - datetime.now(UTC)).total_seconds()
                    tracked.starts_at = time.monotonic() + wait
                tracked.last_look = time.monotonic()
                return snapshot.status
            self.counts.status_queries += 1
            status = await self._deployments.status(workflow_id)
            tracked.last_look = time.monotonic()
        previous = tracked.last_status
        if previous is not None and previous.step == status.step:
            status.attempt = previous.attempt  # retries are seen by full looks only
        return status


def unknown_result() -> DeploymentResult:
    return DeploymentResult(
        success=False, state=DeploymentState.FAILED, error="The workflow ended without a result."
    )
