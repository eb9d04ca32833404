"""Bot and release rows: numbering releases, activating them and rolling them back."""

from __future__ import annotations

from storage.connection import StorageConnection, utc_now
from storage.records import IN_FLIGHT_STATUSES, BotRecord, ReleaseRecord


class ReleasesInFlight(Exception):
    """Another deployment's release of the bot has not been finished with."""

    def __init__(self, releases: list[ReleaseRecord]) -> None:
        super().__init__(
            ", ".join(f"release {r.number} of {r.bot_name} ({r.workflow_id})" for r in releases)
            + " still in flight"
        )
        self.releases = releases


class ReleaseRows(StorageConnection):
    """Each bot's releases and which one is active."""

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
                "UPDATE releases SET status = 'active', updated_at = ?,"
                " live_since = ? WHERE id = ?",
                (now, now, release.id),
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
