"""What every runtime offers: start a release, tell whether it runs, stop it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel


class ReleaseSpec(BaseModel):
    """Everything a runtime needs to start one release of a bot."""

    bot_name: str
    release_number: int
    version: str
    marker: str
    command: list[str]
    image: str | None = None
    env: dict[str, str]
    working_directory: Path
    log_path: Path
    port: int


class ReleaseHandle(BaseModel):
    """How to find a started release again, even from a restarted shipcord."""

    runtime: str
    marker: str
    port: int
    log_path: str
    pid: int | None = None
    process_started_at: float | None = None
    container_id: str | None = None


class RuntimeError_(Exception):
    """A release could not be started or stopped."""


class PermanentRuntimeError(RuntimeError_):
    """A runtime failure that no retry can heal (access denied, an image that cannot be had)."""


class Runtime(Protocol):
    name: str

    async def start(self, spec: ReleaseSpec) -> ReleaseHandle:
        """Start the release, or return the handle of the copy already running."""
        ...

    async def is_running(self, handle: ReleaseHandle) -> bool: ...

    async def stop(self, handle: ReleaseHandle) -> None:
        """Stop the release; stopping one that is not running does nothing."""
        ...

    async def running(self) -> list[ReleaseHandle]:
        """Every release this runtime runs now, whoever started it (by its marker)."""
        ...

    async def exit_description(self, handle: ReleaseHandle) -> str:
        """A short explanation of why a release is not running, for error messages."""
        ...
