"""Where the front end reads a release's log tail: one `ReleaseLogs`, behind one method.

Invariant: the front end reads release output only through `LogTails.tail`, which returns
it redacted (`workflows.release_logs`); permission checks are the caller's. Today the
files and containers are on this host; reading them through this one method is what lets
the source become a Temporal activity on the workers' host later without touching the
commands.
"""

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
