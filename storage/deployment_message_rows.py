"""The Discord side of deployment rows: progress messages and the once-only notification."""

from __future__ import annotations

from storage.connection import StorageConnection, utc_now
from storage.records import DeploymentRecord


class DeploymentMessageRows(StorageConnection):
    """Where each deployment's progress message is, whether it is final, who notifies."""

    async def set_progress_message(
        self, workflow_id: str, *, channel_id: str, message_id: str
    ) -> None:
        await self._execute(
            "UPDATE deployments SET channel_id = ?, message_id = ?, updated_at = ?"
            " WHERE workflow_id = ?",
            (channel_id, message_id, utc_now(), workflow_id),
        )

    async def list_deployments_needing_render(
        self, *, finished_since: str
    ) -> list[DeploymentRecord]:
        """Open deployments, and those closed since `finished_since` whose message is not final."""
        rows = await self._fetch_all(
            "SELECT * FROM deployments WHERE is_open = 1"
            " OR (message_final = 0 AND finished_at >= ?) ORDER BY created_at",
            (finished_since,),
        )
        return [DeploymentRecord.from_row(row) for row in rows]

    async def mark_message_final(self, workflow_id: str) -> None:
        await self._execute(
            "UPDATE deployments SET message_final = 1, updated_at = ? WHERE workflow_id = ?",
            (utc_now(), workflow_id),
        )

    async def clear_progress_message(self, workflow_id: str) -> None:
        """Forget a progress message that no longer exists, so that it is posted again."""
        await self._execute(
            "UPDATE deployments SET message_id = NULL, updated_at = ? WHERE workflow_id = ?",
            (utc_now(), workflow_id),
        )

    async def claim_notification(self, workflow_id: str) -> bool:
        """Atomically take the right to notify about this deployment; True only once."""
        changed = await self._execute(
            "UPDATE deployments SET notified = 1, updated_at = ? WHERE workflow_id = ?"
            " AND notified = 0",
            (utc_now(), workflow_id),
        )
        return changed == 1
