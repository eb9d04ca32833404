"""SQLite storage: who owns which deployment, progress messages, bots and releases."""

from storage.records import (
    BotRecord,
    DeploymentRecord,
    IncidentRecord,
    ReleaseRecord,
    ReleaseWatch,
)
from storage.store import DeploymentConflict, DuplicateWorkflowId, ReleasesInFlight, Storage

__all__ = [
    "BotRecord",
    "DeploymentConflict",
    "DeploymentRecord",
    "DuplicateWorkflowId",
    "IncidentRecord",
    "ReleaseRecord",
    "ReleaseWatch",
    "ReleasesInFlight",
    "Storage",
]
