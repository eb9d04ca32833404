"""What every runtime offers: start a release, tell whether it runs, stop it, read its log."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


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
    # process: the user to run as (shipcord must be root); None runs as shipcord's user.
    run_as: str | None = None
    # docker: "bridge" (its own network namespace) or "host" (the host's, loopback included).
    network: Literal["bridge", "host"] = "bridge"


class ReleaseHandle(BaseModel):
    """How to find a started release again, even from a restarted shipcord."""

    runtime: str
    marker: str
    port: int
    log_path: str
    pid: int | None = None
    process_started_at: float | None = None
    container_id: str | None = None
    # Where shipcord reaches the release's port when that is not its own loopback (a
    # bridged container's port is published on its network's gateway address).
    host: str | None = None
    # docker: the image it runs by digest, since a tag may move: the registry's digest
    # (repo@sha256:...) when the image has one, else the engine's image id.
    image: str | None = None


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
        """Stop the release and everything it started; stopping one that is not running
        does nothing."""
        ...

    async def running(self) -> list[ReleaseHandle]:
        """Every release this runtime runs now, whoever started it (by its marker)."""
        ...

    async def exit_description(self, handle: ReleaseHandle) -> str:
        """How a release that is not running ended ("exited with status 3 after 0.4 s"),
        for error messages: never a word of the release's own output."""
        ...

    async def read_log(self, handle: ReleaseHandle, max_bytes: int) -> tuple[str, bool]:
        """The last `max_bytes` of the release's output (unredacted: callers redact), and
        whether older output was left out."""
        ...


def reachable_url(url: str, handle: ReleaseHandle) -> str:
    """`url` as shipcord reaches it: a loopback host becomes the release's own address."""
    if handle.host is None:
        return url
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK_HOSTS:
        return url
    netloc = handle.host if parts.port is None else f"{handle.host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
