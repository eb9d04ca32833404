"""Incidents the supervisor records and the notices the front end marks as delivered."""

from __future__ import annotations

from storage.connection import StorageConnection, utc_now
from storage.records import IncidentRecord


class IncidentRows(StorageConnection):
    """Incidents, recorded once each, and which of them were announced."""

    async def record_incident(
        self,
        *,
        key: str,
        bot_name: str,
        kind: str,
        message: str,
        release_number: int | None = None,
        workflow_id: str | None = None,
    ) -> bool:
        """Record an incident once; True when it is new."""
        changed = await self._execute(
            "INSERT INTO incidents (key, bot_name, release_number, workflow_id, kind, message,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, bot_name, release_number, workflow_id, kind, message, utc_now()),
        )
        return changed == 1

    async def undelivered_incidents(self, *, since: str) -> list[IncidentRecord]:
        rows = await self._fetch_all(
            "SELECT incidents.* FROM incidents LEFT JOIN incident_notices"
            " ON incident_notices.incident_id = incidents.id"
            " WHERE incident_notices.incident_id IS NULL AND incidents.created_at >= ?"
            " ORDER BY incidents.id",
            (since,),
        )
        return [IncidentRecord.from_row(row) for row in rows]

    async def mark_incident_notified(self, incident_id: int) -> None:
        await self._execute(
            "INSERT INTO incident_notices (incident_id, notified_at) VALUES (?, ?)"
            " ON CONFLICT (incident_id) DO NOTHING",
            (incident_id, utc_now()),
        )

    async def recent_incidents(self, *, since: str, limit: int = 50) -> list[IncidentRecord]:
        rows = await self._fetch_all(
            "SELECT * FROM incidents WHERE created_at >= ? ORDER BY id DESC LIMIT ?",
            (since, limit),
        )
        return [IncidentRecord.from_row(row) for row in rows]

    async def incidents_of(
        self, bot_name: str, *, kinds: tuple[str, ...], since: str
    ) -> list[IncidentRecord]:
        marks = ", ".join("?" for _ in kinds)
        rows = await self._fetch_all(
            f"SELECT * FROM incidents WHERE bot_name = ? AND kind IN ({marks})"
            " AND created_at >= ? ORDER BY id",
            (bot_name, *kinds, since),
        )
        return [IncidentRecord.from_row(row) for row in rows]

    async def latest_incident_keyed(self, key_prefix: str) -> IncidentRecord | None:
        """The most recent incident whose key starts with `key_prefix`."""
        row = await self._fetch_one(
            "SELECT * FROM incidents WHERE substr(key, 1, ?) = ? ORDER BY id DESC LIMIT 1",
            (len(key_prefix), key_prefix),
        )
        return IncidentRecord.from_row(row) if row else None
