"""Opening the SQLite database: file modes, pragmas and numbered migrations."""

from __future__ import annotations

import contextlib
import os
import re
from importlib import resources
from pathlib import Path

import aiosqlite

MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
BUSY_TIMEOUT_MS = 10_000
FILE_MODE = 0o600
FOLDER_MODE = 0o700
SIDE_FILES = ("-wal", "-shm", "-journal")


def migration_scripts() -> list[tuple[int, str]]:
    """The numbered migration scripts shipped with the package, in order."""
    scripts = []
    for entry in resources.files("storage.migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            scripts.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(scripts)


async def open_database(path: Path) -> aiosqlite.Connection:
    """Open (creating if needed) the database at `path`, migrated to the latest schema."""
    make_private(path)
    # Autocommit mode: multi-statement writes open their own BEGIN IMMEDIATE.
    connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = aiosqlite.Row
    try:
        # First: processes opening one new file at once wait for each other's locks, the
        # switch to WAL included.
        await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL lets the front end and separate worker processes read while one writes.
        await connection.execute("PRAGMA journal_mode = WAL")
        await connection.execute("PRAGMA synchronous = NORMAL")
        await connection.execute("PRAGMA foreign_keys = ON")
        await apply_migrations(connection)
    except BaseException:
        await connection.close()
        raise
    return connection


def make_private(path: Path) -> None:
    """Create the database file 0600 if missing; make it and its side files 0600 if not."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").chmod(FILE_MODE)


async def apply_migrations(connection: aiosqlite.Connection) -> int:
    """Apply every migration newer than the database's `user_version`; return the version."""
    await connection.execute("BEGIN IMMEDIATE")
    try:
        async with connection.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        for number, script in migration_scripts():
            if number <= current:
                continue
            for statement in split_statements(script):
                await connection.execute(statement)
            await connection.execute(f"PRAGMA user_version = {number}")
            current = number
        await connection.execute("COMMIT")
    except BaseException:
        await connection.execute("ROLLBACK")
        raise
    return current


def split_statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
