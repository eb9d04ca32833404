"""The one object through which shipcord reads and writes its database."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from storage.database import open_database
from storage.records import (
    IN_FLIGHT_STATUSES,
    BotRecord,
    DeploymentRecord,
    IncidentRecord,
    ReleaseRecord,
    ReleaseWatch,
)


class DuplicateWorkflowId(Exception):
    """A deployment row with this workflow id exists already."""


class ReleasesInFlight(Exception):
    """Another deployment's release of the bot has not been finished with."""

    def __init__(self, releases: list[ReleaseRecord]) -> None:
        super().__init__(
            ", ".join(f"release {r.number} of {r.bot_name} ({r.workflow_id})" for r in releases)
            + " still in flight"
        )
        self.releases = releases


class DeploymentConflict(Exception):
    """The bot already has an open deployment."""

    def __init__(self, bot_name: str, running_workflow_id: str) -> None:
        super().__init__(
            f"{bot_name} already has a deployment in progress ({running_workflow_id}); "
            "wait for it to finish or cancel it first."
        )
        self.bot_name = bot_name
        self.running_workflow_id = running_workflow_id


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Storage:
    """Ownership, progress messages, bots, releases and command snapshots.

    One connection per process; an asyncio lock keeps one coroutine's transaction from
    swallowing another's statements on that shared connection.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Storage:
        return cls(await open_database(path))

    async def close(self) -> None:
        await self._connection.close()

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                await self._connection.execute("ROLLBACK")
                raise
            await self._connection.execute("COMMIT")

    async def _fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Any:
        async with self._lock, self._connection.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def _fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        async with self._lock, self._connection.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def _execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        async with self._lock, self._connection.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    # Deployments -----------------------------------------------------------------------

    async def reserve_deployment(
        self,
        *,
        workflow_id: str,
        bot_name: str,
        version: str,
        owner_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
    ) -> DeploymentRecord:
        """Record a new open deployment under `workflow_id`, which must be new.

        Raises DeploymentConflict when the bot already has an open deployment, and
        DuplicateWorkflowId when a row with that id exists (choose another id).
        """
        now = utc_now()
        async with self._transaction() as db:
            async with db.execute(
                "SELECT workflow_id FROM deployments WHERE bot_name = ? AND is_open = 1",
                (bot_name,),
            ) as cursor:
                running = await cursor.fetchone()
            if running is not None:
                raise DeploymentConflict(bot_name, running["workflow_id"])
            try:
                await db.execute(
                    "INSERT INTO deployments (workflow_id, bot_name, version, owner_id, guild_id,"
                    " channel_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (workflow_id, bot_name, version, owner_id, guild_id, channel_id, now, now),
                )
            except sqlite3.IntegrityError:
                raise DuplicateWorkflowId(workflow_id) from None
            async with db.execute(
                "SELECT * FROM deployments WHERE workflow_id = ?", (workflow_id,)
            ) as cursor:
                return DeploymentRecord.from_row(await cursor.fetchone())

    async def discard_reservation(self, workflow_id: str) -> None:
        """Forget a reservation whose workflow never started (only its reserver calls this)."""
        await self._execute(
            "DELETE FROM deployments WHERE workflow_id = ? AND message_id IS NULL",
            (workflow_id,),
        )

    async def adopt_deployment(
        self,
        *,
        workflow_id: str,
        bot_name: str,
        version: str,
        owner_id: str,
        guild_id: str | None,
        channel_id: str | None,
        created_at: str,
    ) -> bool:
        """Record a deployment another Temporal client started; False if it cannot be now.

        An open row for the same bot (one of ours) leaves it for a later try.
        """
        try:
            changed = await self._execute(
                "INSERT INTO deployments (workflow_id, bot_name, version, owner_id, guild_id,"
                " channel_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (workflow_id) DO NOTHING",
                (
                    workflow_id,
                    bot_name,
                    version,
                    owner_id,
                    guild_id,
                    channel_id,
                    created_at,
                    utc_now(),
                ),
            )
        except sqlite3.IntegrityError:
            return False
        return changed == 1

    async def known_workflow_ids(self, workflow_ids: Iterable[str]) -> set[str]:
        ids = list(workflow_ids)
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        rows = await self._fetch_all(
            f"SELECT workflow_id FROM deployments WHERE workflow_id IN ({marks})", ids
        )
        return {row["workflow_id"] for row in rows}

    async def get_deployment(self, workflow_id: str) -> DeploymentRecord | None:
        row = await self._fetch_one(
            "SELECT * FROM deployments WHERE workflow_id = ?", (workflow_id,)
        )
        return DeploymentRecord.from_row(row) if row else None

    async def list_open_deployments(self, guild_id: str | None = None) -> list[DeploymentRecord]:
        if guild_id is None:
            rows = await self._fetch_all(
                "SELECT * FROM deployments WHERE is_open = 1 ORDER BY created_at"
            )
        else:
            rows = await self._fetch_all(
                "SELECT * FROM deployments WHERE is_open = 1 AND guild_id = ? ORDER BY created_at",
                (guild_id,),
            )
        return [DeploymentRecord.from_row(row) for row in rows]

    async def list_deployments(
        self, *, guild_id: str | None = None, limit: int = 25
    ) -> list[DeploymentRecord]:
        """The most recent deployments, newest first (of one server when given)."""
        if guild_id is None:
            rows = await self._fetch_all(
                "SELECT * FROM deployments ORDER BY created_at DESC LIMIT ?", (limit,)
            )
        else:
            rows = await self._fetch_all(
                "SELECT * FROM deployments WHERE guild_id = ? ORDER BY created_at DESC LIMIT ?",
                (guild_id, limit),
            )
        return [DeploymentRecord.from_row(row) for row in rows]

    async def list_deployments_of_bot(
        self, bot_name: str, *, limit: int = 500
    ) -> list[DeploymentRecord]:
        """The bot's deployments, newest first."""
        rows = await self._fetch_all(
            "SELECT * FROM deployments WHERE bot_name = ? ORDER BY created_at DESC LIMIT ?",
            (bot_name, limit),
        )
        return [DeploymentRecord.from_row(row) for row in rows]

    async def set_progress_message(
        self, workflow_id: str, *, channel_id: str, message_id: str
    ) -> None:
        await self._execute(
            "UPDATE deployments SET channel_id = ?, message_id = ?, updated_at = ?"
            " WHERE workflow_id = ?",
            (channel_id, message_id, utc_now(), workflow_id),
        )

    async def close_deployment(
        self, workflow_id: str, *, state: str, error: str | None, result: str
    ) -> bool:
        """Record how the deployment ended; True the first time, False when already closed."""
        now = utc_now()
        changed = await self._execute(
            "UPDATE deployments SET state = ?, error = ?, result = ?, is_open = 0,"
            " finished_at = ?, updated_at = ? WHERE workflow_id = ? AND is_open = 1",
            (state, error, result, now, now, workflow_id),
        )
        return changed == 1

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

    # Bots and releases -----------------------------------------------------------------

    async def create_release(
        self,
        *,
        workflow_id: str,
        bot_name: str,
        bot_type: str,
        version: str,
        runtime: str,
        target: str,
    ) -> ReleaseRecord:
        """Create the next release of the bot for this workflow (once: retries return it).

        Raises ReleasesInFlight, creating nothing, while another deployment's release of
        the bot is still in flight: its owner decides whether that deployment still runs.
        """
        now = utc_now()
        async with self._transaction() as db:
            async with db.execute(
                "SELECT * FROM releases WHERE workflow_id = ?", (workflow_id,)
            ) as cursor:
                existing = await cursor.fetchone()
            if existing is not None:
                return ReleaseRecord.from_row(existing)
            marks = ", ".join("?" for _ in IN_FLIGHT_STATUSES)
            async with db.execute(
                f"SELECT * FROM releases WHERE bot_name = ? AND status IN ({marks})",
                (bot_name, *IN_FLIGHT_STATUSES),
            ) as cursor:
                in_flight = [ReleaseRecord.from_row(row) for row in await cursor.fetchall()]
            if in_flight:
                raise ReleasesInFlight(in_flight)
            await db.execute(
                "INSERT INTO bots (name, bot_type, created_at, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (bot_name, bot_type, now, now),
            )
            async with db.execute(
                "SELECT active_release, (SELECT COALESCE(MAX(number), 0) FROM releases"
                " WHERE bot_name = ?) AS last_number FROM bots WHERE name = ?",
                (bot_name, bot_name),
            ) as cursor:
                counters = await cursor.fetchone()
            assert counters is not None  # the bots row was upserted just above
            await db.execute(
                "INSERT INTO releases (bot_name, number, version, workflow_id, previous_number,"
                " runtime, status, target, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (
                    bot_name,
                    counters["last_number"] + 1,
                    version,
                    workflow_id,
                    counters["active_release"],
                    runtime,
                    target,
                    now,
                    now,
                ),
            )
            async with db.execute(
                "SELECT * FROM releases WHERE workflow_id = ?", (workflow_id,)
            ) as cursor:
                return ReleaseRecord.from_row(await cursor.fetchone())

    async def get_release_of_workflow(self, workflow_id: str) -> ReleaseRecord | None:
        row = await self._fetch_one("SELECT * FROM releases WHERE workflow_id = ?", (workflow_id,))
        return ReleaseRecord.from_row(row) if row else None

    async def get_release(self, bot_name: str, number: int) -> ReleaseRecord | None:
        row = await self._fetch_one(
            "SELECT * FROM releases WHERE bot_name = ? AND number = ?", (bot_name, number)
        )
        return ReleaseRecord.from_row(row) if row else None

    async def list_releases(self, bot_name: str) -> list[ReleaseRecord]:
        rows = await self._fetch_all(
            "SELECT * FROM releases WHERE bot_name = ? ORDER BY number", (bot_name,)
        )
        return [ReleaseRecord.from_row(row) for row in rows]

    async def get_bot(self, name: str) -> BotRecord | None:
        row = await self._fetch_one("SELECT * FROM bots WHERE name = ?", (name,))
        return BotRecord.from_row(row) if row else None

    async def set_release_runtime(
        self, release_id: int, *, runtime_handle: str | None, status: str
    ) -> None:
        await self._execute(
            "UPDATE releases SET runtime_handle = ?, status = ?, updated_at = ? WHERE id = ?",
            (runtime_handle, status, utc_now(), release_id),
        )

    async def set_release_status(self, release_id: int, status: str) -> None:
        await self._execute(
            "UPDATE releases SET status = ?, updated_at = ? WHERE id = ?",
            (status, utc_now(), release_id),
        )

    async def activate_release(self, release: ReleaseRecord) -> None:
        """Make `release` the bot's active one; the one it replaces becomes superseded."""
        now = utc_now()
        async with self._transaction() as db:
            await db.execute(
                "UPDATE releases SET status = 'superseded', updated_at = ?"
                " WHERE bot_name = ? AND status = 'active' AND id != ?",
                (now, release.bot_name, release.id),
            )
            await db.execute(
                "UPDATE releases SET status = 'active', updated_at = ? WHERE id = ?",
                (now, release.id),
            )
            await db.execute(
                "UPDATE bots SET active_release = ?, updated_at = ? WHERE name = ?",
                (release.number, now, release.bot_name),
            )

    async def roll_back_release(self, release: ReleaseRecord) -> None:
        """Mark `release` rolled back and give the bot back the release it replaced."""
        now = utc_now()
        async with self._transaction() as db:
            await db.execute(
                "UPDATE releases SET status = 'rolled_back', updated_at = ? WHERE id = ?",
                (now, release.id),
            )
            if release.previous_number is None:
                await db.execute(
                    "UPDATE bots SET active_release = NULL, updated_at = ?"
                    " WHERE name = ? AND active_release = ?",
                    (now, release.bot_name, release.number),
                )
                return
            await db.execute(
                "UPDATE bots SET active_release = ?, updated_at = ? WHERE name = ?",
                (release.previous_number, now, release.bot_name),
            )
            await db.execute(
                "UPDATE releases SET status = 'active', updated_at = ?"
                " WHERE bot_name = ? AND number = ?",
                (now, release.bot_name, release.previous_number),
            )

    # Slash-command snapshots ------------------------------------------------------------

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

    # Supervision (workers write watches and incidents; the front end writes notices) -----

    async def installation_id(self) -> str:
        row = await self._fetch_one("SELECT id FROM installation")
        return str(row["id"])

    async def releases_with_status(self, *statuses: str) -> list[ReleaseRecord]:
        marks = ", ".join("?" for _ in statuses)
        rows = await self._fetch_all(
            f"SELECT * FROM releases WHERE status IN ({marks}) ORDER BY id", statuses
        )
        return [ReleaseRecord.from_row(row) for row in rows]

    async def release_runtimes(self) -> set[str]:
        """The runtimes any release of this installation was ever started on."""
        rows = await self._fetch_all("SELECT DISTINCT runtime FROM releases")
        return {row["runtime"] for row in rows}

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

    async def latest_incident_keyed(self, key_prefix: str) -> IncidentRecord | None:
        """The most recent incident whose key starts with `key_prefix`."""
        row = await self._fetch_one(
            "SELECT * FROM incidents WHERE substr(key, 1, ?) = ? ORDER BY id DESC LIMIT 1",
            (len(key_prefix), key_prefix),
        )
        return IncidentRecord.from_row(row) if row else None

    async def latest_deployment_of(self, bot_name: str) -> DeploymentRecord | None:
        """The bot's most recent deployment row (where its owner and channel are)."""
        row = await self._fetch_one(
            "SELECT * FROM deployments WHERE bot_name = ? ORDER BY created_at DESC LIMIT 1",
            (bot_name,),
        )
        return DeploymentRecord.from_row(row) if row else None
