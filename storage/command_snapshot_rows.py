"""Slash-command snapshots: the commands a bot had before a deployment changed them."""

from __future__ import annotations

import json
from typing import Any

from storage.connection import StorageConnection, utc_now


class CommandSnapshotRows(StorageConnection):
    """The first command snapshot taken for each workflow."""

    async def save_command_snapshot(
        self, workflow_id: str, *, application_id: str, commands: list[dict[str, Any]]
    ) -> bool:
        """Keep the first snapshot taken for a workflow; later calls change nothing."""
        changed = await self._execute(
            "INSERT INTO command_snapshots (workflow_id, application_id, commands, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (workflow_id) DO NOTHING",
            (workflow_id, application_id, json.dumps(commands), utc_now()),
        )
        return changed == 1

    async def get_command_snapshot(
        self, workflow_id: str
    ) -> tuple[str, list[dict[str, Any]]] | None:
        row = await self._fetch_one(
            "SELECT application_id, commands FROM command_snapshots WHERE workflow_id = ?",
            (workflow_id,),
        )
        if row is None:
            return None
        return row["application_id"], json.loads(row["commands"])
