"""A release's log tail, redacted: what the front end shows to the people allowed to see it."""

from __future__ import annotations

from dataclasses import dataclass

from storage import ReleaseRecord, Storage
from workflows.redaction import redact
from workflows.release_view import Release
from workflows.runtimes import DockerRuntime, ProcessRuntime, Runtime, RuntimeError_

__all__ = ["DEFAULT_MAX_CHARS", "ReleaseLogTail", "ReleaseLogs"]

# Fits one Discord message (2000 characters) with a code block around it.
DEFAULT_MAX_CHARS = 1800
# Read a little more than is shown: redaction shortens, and the cut lands on a line.
READ_FACTOR = 2


@dataclass(frozen=True, slots=True)
class ReleaseLogTail:
    bot_name: str
    release_number: int
    workflow_id: str
    # The end of the release's output, redacted; '' when it printed nothing yet.
    text: str
    # True when older output was left out.
    truncated: bool
    # Why the log could not be read, or None ('' text then means "no output").
    problem: str | None = None


class ReleaseLogs:
    """Reads releases' logs for people. One per front end; `close()` when done."""

    def __init__(self, storage: Storage, runtimes: dict[str, Runtime] | None = None) -> None:
        self._storage = storage
        self._owned: DockerRuntime | None = None
        if runtimes is None:
            self._owned = DockerRuntime()
            runtimes = {"process": ProcessRuntime(), "docker": self._owned}
        self._runtimes = runtimes

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.close()

    async def __aenter__(self) -> ReleaseLogs:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def of_deployment(
        self, workflow_id: str, *, max_chars: int = DEFAULT_MAX_CHARS
    ) -> ReleaseLogTail | None:
        """The log of the release that deployment `workflow_id` created, if it created one."""
        record = await self._storage.get_release_of_workflow(workflow_id)
        return None if record is None else await self._tail(record, max_chars)

    async def of_release(
        self, bot_name: str, number: int | None = None, *, max_chars: int = DEFAULT_MAX_CHARS
    ) -> ReleaseLogTail | None:
        """The log of release `number` of `bot_name` (its newest release when None)."""
        if number is None:
            releases = await self._storage.list_releases(bot_name)
            record = max(releases, key=lambda release: release.number, default=None)
        else:
            record = await self._storage.get_release(bot_name, number)
        return None if record is None else await self._tail(record, max_chars)

    async def _tail(self, record: ReleaseRecord, max_chars: int) -> ReleaseLogTail:
        release = Release.of(record, await self._storage.installation_id())
        if release.target is not None:
            release.target.read_token()  # registers the token with the redactor, if readable
        handle = release.handle
        runtime = self._runtimes.get(record.runtime)
        text, truncated, problem = "", False, None
        if handle is None:
            problem = "the release was never started"
        elif runtime is None:
            problem = f"the {record.runtime} runtime is not available here"
        else:
            try:
                text, truncated = await runtime.read_log(handle, max_chars * READ_FACTOR)
            except RuntimeError_ as error:
                problem = redact(str(error))
        text = redact(text)
        if len(text) > max_chars:
            text = text[-max_chars:].partition("\n")[2] or text[-max_chars:]
            truncated = True
        return ReleaseLogTail(
            bot_name=record.bot_name,
            release_number=record.number,
            workflow_id=record.workflow_id,
            text=text.strip("\n"),
            truncated=truncated,
            problem=problem,
        )
