"""Deployment rows: reserving a bot, adopting other clients' deployments, lookups, closing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from storage.connection import StorageConnection, utc_now
from storage.records import DeploymentRecord


class DuplicateWorkflowId(Exception):
    """A deployment row with this workflow id exists already."""


class DeploymentConflict(Exception):
    """The bot already has an open deployment."""

    def __init__(self, bot_name: str, running_workflow_id: str) -> None:
        super().__init__(
            f"{bot_name} already has a deployment in progress ({running_workflow_id}); "
            "wait for it to finish or cancel it first."
        )
        self.bot_name = bot_name
        self.running_workflow_id = running_workflow_id


class DeploymentRows(StorageConnection):
    """Who deployed which bot, where, and how it ended."""

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

    async def set_deployment_version(self, workflow_id: str, version: str) -> None:
        """The version the deployment deploys, once the workflow resolved it (a rollback's
        is that of the release it puts back, whatever its input said)."""
        await self._execute(
            "UPDATE deployments SET version = ?, updated_at = ? WHERE workflow_id = ?",
            (version, utc_now(), workflow_id),
        )

    async def latest_deployment_of(self, bot_name: str) -> DeploymentRecord | None:
        """The bot's most recent deployment row (where its owner and channel are)."""
        row = await self._fetch_one(
            "SELECT * FROM deployments WHERE bot_name = ? ORDER BY created_at DESC LIMIT 1",
            (bot_name,),
        )
        return DeploymentRecord.from_row(row) if row else None
