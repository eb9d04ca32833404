"""Where the front end reads a release's log tail: one `ReleaseLogs`, behind one method."""

from __future__ import annotations

from storage import Storage
from workflows.release_logs import ReleaseLogs, ReleaseLogTail


class LogTails:
    """Owns the front end's `ReleaseLogs` (and so its Docker client); `close()` on shutdown."""

    def __init__(self, storage: Storage, logs: ReleaseLogs | None = None) -> None:
        self._logs = logs if logs is not None else ReleaseLogs(storage)

    async def tail(
        self, bot_name: str, number: int | None, *, max_chars: int
    ) -> ReleaseLogTail | None:
        """The redacted end of release `number` of `bot_name` (its newest when None); None
        when there is no such release."""
        return await self._logs.of_release(bot_name, number, max_chars=max_chars)

    async def close(self) -> None:
        await self._logs.close()
