"""Rows of the shipcord database as immutable values."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

IN_FLIGHT_STATUSES = ("pending", "running")


def _columns_by_field(
    record_type: type, row: Any, *, flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The row's value for each field of the record, read from the column of its name.
    SQLite keeps booleans as 0 and 1, so the `flags` are made bool again."""
    values = {field.name: row[field.name] for field in fields(record_type)}
    for flag in flags:
        values[flag] = bool(values[flag])
    return values


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
        return cls(**_columns_by_field(cls, row, flags=("is_open", "notified", "message_final")))


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
        return cls(**_columns_by_field(cls, row))


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
        return cls(**_columns_by_field(cls, row))
