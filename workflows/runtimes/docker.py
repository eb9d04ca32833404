"""The `docker` runtime: each release is a container, driven through the Docker Engine API.

shipcord talks to the engine over its unix socket with aiohttp (no Docker SDK). A release
is found again by the label `shipcord.release=<marker>`, so a retried start adopts the
container that an interrupted attempt already created, and a stop finds it even when the
handle never got saved. Containers share the host's network, so the target's `PORT` and
`health_url` on 127.0.0.1 work as they do for processes. shipcord supervises releases
itself: the restart policy is "no".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp

from workflows.runtimes.base import ReleaseHandle, ReleaseSpec, RuntimeError_
from workflows.runtimes.process import log_tail

DEFAULT_SOCKET = "/var/run/docker.sock"
STOP_GRACE_SECONDS = 10.0
PULL_TIMEOUT_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 5.0
API_TIMEOUT_SECONDS = 30.0

RELEASE_LABEL = "shipcord.release"
BOT_LABEL = "shipcord.bot"
RELEASE_NUMBER_LABEL = "shipcord.release-number"
VERSION_LABEL = "shipcord.version"

OUTPUT_TAIL_LINES = 20
OUTPUT_TAIL_CHARS = 300
# The host's PATH means nothing inside an image, which sets its own.
HOST_ONLY_VARIABLES = frozenset({"PATH"})
NAME_FORBIDDEN = re.compile(r"[^a-zA-Z0-9_.-]+")


class DockerRuntime:
    name = "docker"

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        *,
        pull_timeout_seconds: float = PULL_TIMEOUT_SECONDS,
    ) -> None:
        self._engine = DockerEngine(socket_path)
        self._stop_grace = stop_grace_seconds
        self._pull_timeout = pull_timeout_seconds

    async def close(self) -> None:
        await self._engine.close()

    # Runtime protocol -------------------------------------------------------------------

    async def start(self, spec: ReleaseSpec) -> ReleaseHandle:
        existing = await self._find_by_marker(spec.marker)
        if existing is not None and existing.get("State") == "running":
            return self._handle(spec, existing["Id"])
        if existing is not None:
            # A stopped copy from an earlier attempt: start afresh rather than resume it.
            await self._remove(existing["Id"], log_path=str(spec.log_path))
        container_id = await self._create(spec)
        await self._start_container(container_id, spec.image or "")
        return self._handle(spec, container_id)

    async def is_running(self, handle: ReleaseHandle) -> bool:
        details = await self._inspect_release(handle)
        return details is not None and is_running_state(details["State"])

    async def stop(self, handle: ReleaseHandle) -> None:
        for container_id in await self._containers_of(handle):
            await self._stop_container(container_id)
            await self._remove(container_id, log_path=handle.log_path)

    async def exit_description(self, handle: ReleaseHandle) -> str:
        details = await self._inspect_release(handle)
        if details is None:
            tail = await asyncio.to_thread(log_tail, handle.log_path) if handle.log_path else ""
            gone = "the container no longer exists"
            return f"{gone}; last output: {tail}" if tail else gone
        what = describe_state(details["State"])
        output = one_line(await self._output_tail(details["Id"]))
        return f"{what}; last output: {output}" if output else what

    # Finding containers -----------------------------------------------------------------

    async def _find_by_marker(self, marker: str) -> dict[str, Any] | None:
        """The release's container (a running one first), from the container list."""
        containers = await self._list_by_marker(marker)
        containers.sort(key=lambda container: container.get("State") != "running")
        return containers[0] if containers else None

    async def _list_by_marker(self, marker: str) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"{RELEASE_LABEL}={marker}"]})
        status, answer = await self._engine.call(
            "GET", "/containers/json", params={"all": "1", "filters": filters}
        )
        if status != 200:
            raise engine_refused("cannot list containers", status, answer)
        return list(answer)

    async def _inspect(self, container_id: str) -> dict[str, Any] | None:
        status, answer = await self._engine.call("GET", f"/containers/{container_id}/json")
        if status == 404:
            return None
        if status != 200:
            raise engine_refused(f"cannot inspect container {container_id[:12]}", status, answer)
        return dict(answer)

    async def _inspect_release(self, handle: ReleaseHandle) -> dict[str, Any] | None:
        """The release's container by id, else by its label (the id was never saved)."""
        if handle.container_id:
            details = await self._inspect(handle.container_id)
            if details is not None:
                return details
        found = await self._find_by_marker(handle.marker)
        return await self._inspect(found["Id"]) if found is not None else None

    async def _containers_of(self, handle: ReleaseHandle) -> list[str]:
        labelled = [container["Id"] for container in await self._list_by_marker(handle.marker)]
        known = [handle.container_id] if handle.container_id else []
        return list(dict.fromkeys([*known, *labelled]))

    # Creating and starting --------------------------------------------------------------

    async def _create(self, spec: ReleaseSpec) -> str:
        image = spec.image or ""
        if not image:
            raise RuntimeError_(f"the {spec.bot_name} target names no image to run")
        status, answer = await self._create_request(spec)
        if status == 404:
            await self._pull(image)
            status, answer = await self._create_request(spec)
        if status == 409:
            # Another attempt created it between our look-up and now: adopt that one.
            adopted = await self._find_by_marker(spec.marker)
            if adopted is not None:
                return str(adopted["Id"])
            raise RuntimeError_(
                f"a container named {container_name(spec)} exists but is not release "
                f"{spec.release_number} of {spec.bot_name}; remove it first"
            )
        if status != 201:
            raise engine_refused(f"cannot create a container from {image}", status, answer)
        return str(answer["Id"])

    async def _create_request(self, spec: ReleaseSpec) -> tuple[int, Any]:
        return await self._engine.call(
            "POST",
            "/containers/create",
            params={"name": container_name(spec)},
            body=container_config(spec),
        )

    async def _pull(self, image: str) -> None:
        repository, tag = split_image_reference(image)
        problem = await self._engine.pull(repository, tag, timeout=self._pull_timeout)
        if problem:
            raise RuntimeError_(
                f"image {image} is not available locally and could not be pulled: {problem}"
            )

    async def _start_container(self, container_id: str, image: str) -> None:
        status, answer = await self._engine.call("POST", f"/containers/{container_id}/start")
        if status in (204, 304):  # 304: already started by a concurrent attempt
            return
        # A container that cannot start (say, its command is not in the image) is useless;
        # failing to remove it must not hide why it did not start.
        with contextlib.suppress(RuntimeError_):
            await self._remove(container_id, log_path="")
        raise engine_refused(f"cannot start the container from {image}", status, answer)

    # Stopping ---------------------------------------------------------------------------

    async def _stop_container(self, container_id: str) -> None:
        status, answer = await self._engine.call(
            "POST",
            f"/containers/{container_id}/stop",
            params={"t": str(max(0, round(self._stop_grace)))},
            timeout=self._stop_grace + API_TIMEOUT_SECONDS,
        )
        if status not in (204, 304, 404):  # 304: already stopped; 404: already gone
            raise engine_refused(f"cannot stop container {container_id[:12]}", status, answer)

    async def _remove(self, container_id: str, *, log_path: str) -> None:
        """Remove the container, first keeping its output in the release log."""
        if log_path:
            await self._archive_output(container_id, Path(log_path))
        status, answer = await self._engine.call(
            "DELETE", f"/containers/{container_id}", params={"force": "1"}
        )
        if status not in (204, 404, 409):  # 409: a removal is already in progress
            raise engine_refused(f"cannot remove container {container_id[:12]}", status, answer)

    # Output -----------------------------------------------------------------------------

    async def _output(self, container_id: str, tail: str) -> str:
        status, raw = await self._engine.call_raw(
            "GET",
            f"/containers/{container_id}/logs",
            params={"stdout": "1", "stderr": "1", "tail": tail},
        )
        if status != 200:
            return ""
        return demultiplex(raw).decode("utf-8", "replace")

    async def _output_tail(self, container_id: str) -> str:
        return await self._output(container_id, str(OUTPUT_TAIL_LINES))

    async def _archive_output(self, container_id: str, log_path: Path) -> None:
        """The container's output goes to the release log: it outlives the container."""
        output = await self._output(container_id, "all")
        details = await self._inspect(container_id)
        ending = describe_state(details["State"]) if details is not None else "container gone"
        if output and not output.endswith("\n"):
            output += "\n"
        text = (
            f"--- shipcord: output of container {container_id[:12]} ---\n"
            f"{output}--- shipcord: {ending} ---\n"
        )
        await asyncio.to_thread(append_text, log_path, text)

    def _handle(self, spec: ReleaseSpec, container_id: str) -> ReleaseHandle:
        return ReleaseHandle(
            runtime=self.name,
            marker=spec.marker,
            port=spec.port,
            log_path=str(spec.log_path),
            container_id=container_id,
        )


class DockerEngine:
    """A thin client for the Docker Engine API on a unix socket, with one-line errors."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        # Created on first use, so inside the event loop that will use it.
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                base_url="http://docker",
                connector=aiohttp.UnixConnector(path=self.socket_path),
            )
        return self._http

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float = API_TIMEOUT_SECONDS,
    ) -> tuple[int, Any]:
        """The status and the decoded JSON answer (None when there is no body)."""
        status, raw = await self.call_raw(method, path, params=params, body=body, timeout=timeout)
        try:
            return status, json.loads(raw) if raw.strip() else None
        except ValueError:
            return status, {"message": raw.decode("utf-8", "replace").strip()}

    async def call_raw(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float = API_TIMEOUT_SECONDS,
    ) -> tuple[int, bytes]:
        try:
            async with self._session().request(
                method, path, params=params, json=body, timeout=self._timeout(timeout)
            ) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError:
            raise self._unreachable(f"no connection within {CONNECT_TIMEOUT_SECONDS:g}s") from None
        except TimeoutError:
            raise RuntimeError_(
                f"the Docker engine at {self.socket_path} did not answer {method} {path} "
                f"within {timeout:g}s"
            ) from None
        except aiohttp.ClientError as error:
            raise self._unreachable(connection_problem(error)) from None

    async def pull(self, repository: str, tag: str, *, timeout: float) -> str:
        """Pull an image; '' on success, else what went wrong."""
        try:
            async with self._session().post(
                "/images/create",
                params={"fromImage": repository, "tag": tag},
                timeout=self._timeout(timeout),
            ) as response:
                if response.status != 200:
                    return error_message(await response.read())
                # The engine answers 200 at once and reports failures in the progress stream.
                async for line in response.content:
                    problem = progress_error(line)
                    if problem:
                        return problem
                return ""
        except aiohttp.ConnectionTimeoutError:
            raise self._unreachable(f"no connection within {CONNECT_TIMEOUT_SECONDS:g}s") from None
        except TimeoutError:
            return f"no result within {timeout:g}s"
        except aiohttp.ClientError as error:
            raise self._unreachable(connection_problem(error)) from None

    @staticmethod
    def _timeout(total: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_TIMEOUT_SECONDS)

    def _unreachable(self, reason: str) -> RuntimeError_:
        return RuntimeError_(f"cannot reach the Docker engine at {self.socket_path}: {reason}")


# Pure helpers ---------------------------------------------------------------------------


def container_name(spec: ReleaseSpec) -> str:
    """A readable name that is unique per release, within Docker's name rules."""
    bot = NAME_FORBIDDEN.sub("-", spec.bot_name).strip("-.")[:40] or "bot"
    digest = hashlib.sha256(spec.marker.encode()).hexdigest()[:12]
    return f"shipcord-{bot}-{spec.release_number}-{digest}"


def container_config(spec: ReleaseSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in environment(spec.env)],
        "Labels": {
            RELEASE_LABEL: spec.marker,
            BOT_LABEL: spec.bot_name,
            RELEASE_NUMBER_LABEL: str(spec.release_number),
            VERSION_LABEL: spec.version,
        },
        "Tty": False,
        "OpenStdin": False,
        "HostConfig": {
            "NetworkMode": "host",
            "RestartPolicy": {"Name": "no"},
            # A tiny init as PID 1 passes SIGTERM on, so a bot without a signal handler
            # still stops at once instead of after the whole grace period.
            "Init": True,
        },
    }
    if spec.command:
        config["Cmd"] = list(spec.command)
    return config


def environment(env: dict[str, str]) -> Iterable[tuple[str, str]]:
    return ((key, value) for key, value in env.items() if key not in HOST_ONLY_VARIABLES)


def split_image_reference(image: str) -> tuple[str, str]:
    """`repository[:tag][@digest]` as the pull API wants it (no tag would pull every tag)."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return repository, digest
    last_part = image.rsplit("/", 1)[-1]
    if ":" in last_part:
        repository, tag = image.rsplit(":", 1)
        return repository, tag
    return image, "latest"


def is_running_state(state: dict[str, Any]) -> bool:
    return bool(
        state.get("Running")
        and not state.get("Restarting")
        and not state.get("Paused")
        and not state.get("Dead")
    )


def describe_state(state: dict[str, Any]) -> str:
    if is_running_state(state):
        return "the container is still running"
    if state.get("Paused"):
        return "the container is paused"
    if state.get("OOMKilled"):
        return f"the container ran out of memory (status {state.get('ExitCode')})"
    if state.get("Error"):
        return f"the container could not run: {state['Error']}"
    if state.get("Status") == "created":
        return "the container was created but never started"
    return f"the container exited with status {state.get('ExitCode')}"


def demultiplex(raw: bytes) -> bytes:
    """The output in a log stream without a TTY: frames of an 8-byte header + payload."""
    output = bytearray()
    offset = 0
    while offset + 8 <= len(raw):
        stream, size = raw[offset], int.from_bytes(raw[offset + 4 : offset + 8], "big")
        if stream not in (0, 1, 2) or raw[offset + 1 : offset + 4] != b"\0\0\0":
            return raw  # not multiplexed after all (a container with a TTY)
        output += raw[offset + 8 : offset + 8 + size]
        offset += 8 + size
    return bytes(output)


def one_line(text: str, limit: int = OUTPUT_TAIL_CHARS) -> str:
    return text.strip().replace("\r", "").replace("\n", " | ")[-limit:]


def append_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.write(text)


def error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message") or raw.decode("utf-8", "replace")).strip()
    except (ValueError, AttributeError):
        return raw.decode("utf-8", "replace").strip()


def progress_error(line: bytes) -> str:
    try:
        progress = json.loads(line)
    except ValueError:
        return ""
    if not isinstance(progress, dict):
        return ""
    return str(progress.get("error") or "")


def engine_refused(what: str, status: int, answer: Any) -> RuntimeError_:
    message = answer.get("message") if isinstance(answer, dict) else None
    return RuntimeError_(f"{what}: the Docker engine answered {status}: {message or answer}")


def connection_problem(error: aiohttp.ClientError) -> str:
    if isinstance(error, aiohttp.ClientConnectorError):
        return error.os_error.strerror or str(error.os_error)
    return str(error) or type(error).__name__
