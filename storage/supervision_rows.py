"""Supervision state: the installation's id and each release's crash-loop watch."""

from __future__ import annotations

import json

from storage.connection import StorageConnection, utc_now
from storage.records import ReleaseWatch


class SupervisionRows(StorageConnection):
    """What the supervisor needs to remember between rounds (workers write it)."""

    async def installation_id(self) -> str:
        row = await self._fetch_one("SELECT id FROM installation")
        return str(row["id"])

    async def get_watch(self, release_id: int) -> ReleaseWatch | None:
        row = await self._fetch_one(
            "SELECT * FROM release_watch WHERE release_id = ?", (release_id,)
        )
        return ReleaseWatch.from_row(row) if row else None

    async def save_watch(self, watch: ReleaseWatch) -> None:
        await self._execute(
            "INSERT INTO release_watch (release_id, restarts, next_attempt_at, crash_looping,"
            " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (release_id) DO UPDATE SET"
            " restarts = excluded.restarts, next_attempt_at = excluded.next_attempt_at,"
            " crash_looping = excluded.crash_looping, updated_at = excluded.updated_at",
            (
                watch.release_id,
                json.dumps(list(watch.restarts)),
                watch.next_attempt_at,
                int(watch.crash_looping),
                utc_now(),
            ),
        )
