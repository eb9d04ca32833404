"""Releases recorded before shipcord kept the target with each release: finding them, and
giving each its target once."""

from __future__ import annotations

from storage.connection import StorageConnection, utc_now
from storage.records import ReleaseRecord


class ReleaseBackfill(StorageConnection):
    async def releases_without_target(self) -> list[ReleaseRecord]:
        """Every release recorded without its target, oldest first, whatever its status."""
        rows = await self._fetch_all("SELECT * FROM releases WHERE target IS NULL ORDER BY id")
        return [ReleaseRecord.from_row(row) for row in rows]

    async def record_missing_target(self, release_id: int, target: str) -> bool:
        """Give a release recorded without its target this one (JSON); True when it did. A
        release that has its target already keeps it (another worker of the host may have
        given it one a moment ago)."""
        changed = await self._execute(
            "UPDATE releases SET target = ?, updated_at = ? WHERE id = ? AND target IS NULL",
            (target, utc_now(), release_id),
        )
        return changed == 1
