"""The lines of `/status`'s list: one per open deployment, each read on its own, so that
one whose status cannot be read (a query whose answer does not decode, a workflow that is
not what its id says) shows as such and the others still show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from bot.interactions.user_answers import UserError
from bot.render import render_scheduled_line, render_status_line, render_unreadable_line
from storage import DeploymentRecord
from workflows.deployment_client import DeploymentSnapshot
from workflows.models import DeploymentStatus

log = structlog.get_logger(__name__)

Snapshot = Callable[[str], Awaitable[DeploymentSnapshot]]


async def open_deployment_line(
    record: DeploymentRecord, last_status: DeploymentStatus | None, snapshot: Snapshot
) -> str:
    """The deployment's line: from the board's last status, else from Temporal. A status
    Temporal cannot give (unknown, unreachable) shows the row as it is; one that cannot be
    read shows that, and never fails the list."""
    status = last_status
    try:
        if status is None:
            try:
                seen = await snapshot(record.workflow_id)
            except UserError:
                seen = None
            if seen is not None and seen.scheduled_for is not None:
                return render_scheduled_line(record, seen.scheduled_for)
            status = seen.status if seen is not None else None
        return render_status_line(record, status)
    except Exception as error:
        log.warning(
            "status_unreadable",
            workflow_id=record.workflow_id,
            error=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
        )
        return render_unreadable_line(record)
