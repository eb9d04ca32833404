"""Starting, checking and stopping releases from what they recorded."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
from temporalio.exceptions import ApplicationError

from storage import ReleaseRecord, Storage
from workflows.file_access import token_file_problem
from workflows.release_view import Release
from workflows.runtimes import (
    PermanentRuntimeError,
    ReleaseHandle,
    ReleaseSpec,
    Runtime,
    RuntimeError_,
)
from workflows.targets import Target

log = structlog.get_logger(__name__)


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="ValidationError", non_retryable=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def runtime_errors() -> Iterator[None]:
    """A runtime that failed (the engine unreachable, a stop that hung): Temporal retries,
    unless the runtime says no retry can heal it."""
    try:
        yield
    except RuntimeError_ as error:
        raise ApplicationError(
            str(error),
            type="RuntimeError",
            non_retryable=isinstance(error, PermanentRuntimeError),
        ) from None


class ReleaseOperator:
    def __init__(
        self,
        *,
        storage: Storage,
        runtimes: dict[str, Runtime],
        data_dir: Path,
        discord_api_base: str,
        installation: str,
    ) -> None:
        self._storage = storage
        self.runtimes = runtimes
        self._data_dir = data_dir
        self._discord_api_base = discord_api_base
        self.installation = installation

    def release(self, record: ReleaseRecord) -> Release:
        return Release.of(record, self.installation)

    def runtime(self, name: str) -> Runtime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise invalid(f"The {name} runtime is not available on this worker.")
        return runtime

    def token(self, target: Target) -> str:
        token = target.read_token()
        if token is None:
            unreadable = token_file_problem(target.token_file) if target.token_file else None
            if unreadable is not None:
                raise invalid(f"No token for {target.name}: {unreadable}.")
            raise invalid(f"No token for {target.name}: {target.token_source} is not set.")
        return token

    def recorded_target(self, release: Release) -> Target:
        if release.target is None:
            raise invalid(
                f"{release.name} was recorded without its target, so it cannot be started "
                "again; deploy it anew."
            )
        return release.target

    async def is_running(self, release: Release) -> bool:
        if release.handle is None:
            return False
        with runtime_errors():
            return await self.runtime(release.handle.runtime).is_running(release.handle)

    async def exit_description(self, release: Release) -> str:
        if release.handle is None:
            return "it was never started"
        return await self.runtime(release.handle.runtime).exit_description(release.handle)

    async def stop(self, release: Release) -> None:
        runtime = self.runtime(release.record.runtime)
        with runtime_errors():
            await runtime.stop(release.handle_or_marker())

    async def ensure_running(self, release: Release, *, status: str) -> ReleaseHandle:
        """Start the release unless the copy we know of (or can find) already runs."""
        record = release.record
        runtime = self.runtime(record.runtime)
        known = release.handle
        if known is not None and await self.is_running(release):
            if record.status != status:
                await self._storage.set_release_status(record.id, status)
            return known
        target = self.recorded_target(release)
        token = self.token(target)
        port = known.port if known is not None else free_port()
        spec = ReleaseSpec(
            bot_name=record.bot_name,
            release_number=record.number,
            version=record.version,
            marker=release.marker,
            command=target.render_command(version=record.version, port=port),
            image=target.render_image(version=record.version),
            env=self._environment(target, token, port),
            working_directory=target.working_directory,
            log_path=self._data_dir / "releases" / f"{record.bot_name}-{record.number}.log",
            port=port,
            run_as=target.user,
            network=target.network,
        )
        try:
            handle = await runtime.start(spec)
        except RuntimeError_ as error:
            raise ApplicationError(
                f"Could not start release {record.number} of {record.bot_name}: {error}",
                type="RuntimeError",
                non_retryable=True,
            ) from None
        await self._storage.set_release_runtime(
            record.id, runtime_handle=handle.model_dump_json(), status=status
        )
        log.info(
            "release started",
            bot=record.bot_name,
            release=record.number,
            runtime=handle.runtime,
            pid=handle.pid,
            port=handle.port,
        )
        return handle

    def marker(self, record: ReleaseRecord) -> str:
        """The release's marker from its row alone (its target and handle unread)."""
        return Release.marker_of(record, self.installation)

    async def running_markers(
        self, problems: dict[str, Exception] | None = None
    ) -> dict[str, tuple[Runtime, ReleaseHandle]]:
        """This installation's releases that run now, by marker, whatever shipcord recorded.

        Only runtimes that this installation ever used are asked: a worker without a
        Docker engine never touches the Docker socket. With `problems`, a runtime that
        cannot be asked is put there (by name) and the others are still listed; without
        it, the first one raises.
        """
        found: dict[str, tuple[Runtime, ReleaseHandle]] = {}
        suffix = Release.marker_suffix(self.installation)
        used = await self._storage.release_runtimes()
        for name, runtime in self.runtimes.items():
            if name not in used:
                continue
            try:
                with runtime_errors():
                    handles = await runtime.running()
            except Exception as error:
                if problems is None:
                    raise
                problems[name] = error
                continue
            for handle in handles:
                if handle.marker.endswith(suffix):
                    found[handle.marker] = (runtime, handle)
        return found

    def _environment(self, target: Target, token: str, port: int) -> dict[str, str]:
        """A clean environment: never shipcord's own token or settings."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "DISCORD_TOKEN": token,
            "PORT": str(port),
            "DISCORD_API_BASE": self._discord_api_base,
        }
        env.update(target.env)
        return env
