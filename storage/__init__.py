"""SQLite storage: who owns which deployment, progress messages, bots and releases."""

from storage.records import OPEN_STATES, BotRecord, DeploymentRecord, ReleaseRecord
from storage.store import DeploymentConflict, Storage

__all__ = [
    "OPEN_STATES",
    "BotRecord",
    "DeploymentConflict",
    "DeploymentRecord",
    "ReleaseRecord",
    "Storage",
]
