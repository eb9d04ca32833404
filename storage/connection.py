"""The shared connection beneath `Storage`: opening, closing, transactions and queries.

Every table's rows (the `*_rows` mixins) go through these few methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import aiosqlite

from storage.database import open_database


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class StorageConnection:
    """The process's one connection, and the only methods that touch it.

    An asyncio lock keeps one coroutine's transaction from swallowing another's
    statements on that shared connection.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Self:
        return cls(await open_database(path))

    async def close(self) -> None:
        await self._connection.close()

    async def __aenter__(self) -> Self:
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
