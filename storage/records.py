"""Rows of the shipcord database as immutable values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

IN_FLIGHT_STATUSES = ("pending", "running")


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    workflow_id: str
    bot_name: str
    version: str
    owner_id: str
    guild_id: str | None
    channel_id: str | None
    message_id: str | None
    state: str
    is_open: bool
    notified: bool
    error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None
    message_final: bool = False
    result: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> DeploymentRecord:
        return cls(
            workflow_id=row["workflow_id"],
            bot_name=row["bot_name"],
            version=row["version"],
            owner_id=row["owner_id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            message_id=row["message_id"],
            state=row["state"],
            is_open=bool(row["is_open"]),
            notified=bool(row["notified"]),
            error=row["error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            finished_at=row["finished_at"],
            message_final=bool(row["message_final"]),
            result=row["result"],
        )


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    id: int
    bot_name: str
    number: int
    version: str
    workflow_id: str
    previous_number: int | None
    runtime: str
    runtime_handle: str | None
    status: str
    created_at: str
    updated_at: str
    target: str | None = None
    live_since: str | None = None

    @property
    def went_live(self) -> str:
        """When it became the active release (its last update, if made live before that
        was recorded)."""
        return self.live_since or self.updated_at

    @property
    def in_flight(self) -> bool:
        """Created by a deployment that has not finished with it yet."""
        return self.status in IN_FLIGHT_STATUSES

    @classmethod
    def from_row(cls, row: Any) -> ReleaseRecord:
        return cls(
            id=row["id"],
            bot_name=row["bot_name"],
            number=row["number"],
            version=row["version"],
            workflow_id=row["workflow_id"],
            previous_number=row["previous_number"],
            runtime=row["runtime"],
            runtime_handle=row["runtime_handle"],
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            target=row["target"],
            live_since=row["live_since"],
        )


@dataclass(frozen=True, slots=True)
class BotRecord:
    name: str
    bot_type: str
    active_release: int | None

    @classmethod
    def from_row(cls, row: Any) -> BotRecord:
        return cls(name=row["name"], bot_type=row["bot_type"], active_release=row["active_release"])


@dataclass(frozen=True, slots=True)
class ReleaseWatch:
    """How supervision has treated one active release lately."""

    release_id: int
    restarts: tuple[str, ...]  # ISO times of recent restarts, oldest first
    next_attempt_at: str | None
    crash_looping: bool

    @classmethod
    def from_row(cls, row: Any) -> ReleaseWatch:
        return cls(
            release_id=row["release_id"],
            restarts=tuple(json.loads(row["restarts"])),
            next_attempt_at=row["next_attempt_at"],
            crash_looping=bool(row["crash_looping"]),
        )


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """Something supervision found and did about a bot, told to its owner once."""

    id: int
    key: str
    bot_name: str
    release_number: int | None
    workflow_id: str | None
    kind: str
    message: str
    created_at: str

    @classmethod
    def from_row(cls, row: Any) -> IncidentRecord:
        return cls(
            id=row["id"],
            key=row["key"],
            bot_name=row["bot_name"],
            release_number=row["release_number"],
            workflow_id=row["workflow_id"],
            kind=row["kind"],
            message=row["message"],
            created_at=row["created_at"],
        )
