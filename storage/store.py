"""The one object through which shipcord reads and writes its database."""

from __future__ import annotations

from storage.command_snapshot_rows import CommandSnapshotRows
from storage.deployment_message_rows import DeploymentMessageRows
from storage.deployment_rows import DeploymentConflict, DeploymentRows, DuplicateWorkflowId
from storage.incident_rows import IncidentRows
from storage.release_backfill import ReleaseBackfill
from storage.release_rows import ReleaseRows, ReleasesInFlight
from storage.supervision_rows import SupervisionRows

__all__ = ["DeploymentConflict", "DuplicateWorkflowId", "ReleasesInFlight", "Storage"]


class Storage(
    DeploymentRows,
    DeploymentMessageRows,
    ReleaseRows,
    ReleaseBackfill,
    CommandSnapshotRows,
    SupervisionRows,
    IncidentRows,
):
    """Ownership, progress messages, bots, releases and command snapshots.

    One connection per process; an asyncio lock keeps one coroutine's transaction from
    swallowing another's statements on that shared connection. The plumbing is
    `StorageConnection`'s; each base class holds one family of tables.
    """
