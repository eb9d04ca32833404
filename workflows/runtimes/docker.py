"""The `docker` runtime: each release is a container, driven through the Engine API (aiodocker)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.exceptions import DockerError

import workflows.runtimes.release_files as release_files
from workflows.runtimes.base import PermanentRuntimeError, ReleaseHandle, ReleaseSpec, RuntimeError_
from workflows.runtimes.docker_gateway import bridge_gateway_address

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_NETWORK = "shipcord-releases"
NETWORK_LABEL = "shipcord.network"
STOP_GRACE_SECONDS = 10.0
PULL_TIMEOUT_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 5.0
API_TIMEOUT_SECONDS = 30.0

RELEASE_LABEL = "shipcord.release"
BOT_LABEL = "shipcord.bot"
RELEASE_NUMBER_LABEL = "shipcord.release-number"
VERSION_LABEL = "shipcord.version"
PORT_LABEL = "shipcord.port"
# How long a 409 on create may take to show the container that holds the name: the engine
# reserves a name before the container it names can be inspected.
ADOPT_WAIT_SECONDS = 5.0

OUTPUT_TAIL_CHARS = 300
# Lines asked of the engine for a log tail; the bytes are cut to size afterwards.
LOG_TAIL_LINES = 400
# The host's PATH means nothing inside an image, which sets its own.
HOST_ONLY_VARIABLES = frozenset({"PATH"})
NAME_FORBIDDEN = re.compile(r"[^a-zA-Z0-9_.-]+")
# aiodocker reports "could not connect" as this pseudo status, with the socket error as context.
CONNECTION_FAILED = 900

T = TypeVar("T")
Request = Callable[[aiodocker.Docker], Awaitable[T]]


class EngineAccessDenied(PermanentRuntimeError):
    """The Docker socket exists but refuses this worker's user: retrying cannot help."""


class ImageUnavailable(PermanentRuntimeError):
    """The image is not on the engine and the registry will not give it: retrying cannot help."""


class EngineRefused(RuntimeError_):
    """The engine answered a request with an error status (0: an error in a progress stream)."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"{what}: the Docker engine answered {status}: {one_line(detail)}")
        self.status = status
        self.detail = detail


class EngineSilent(RuntimeError_):
    """The engine accepted the connection but gave no answer in time."""


class DockerRuntime:
    name = "docker"

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        *,
        pull_timeout_seconds: float = PULL_TIMEOUT_SECONDS,
        network: str = DEFAULT_NETWORK,
    ) -> None:
        self.socket_path = socket_path
        self.network = network
        self._stop_grace = stop_grace_seconds
        self._pull_timeout = pull_timeout_seconds
        self._client: aiodocker.Docker | None = None
        self._gateway: str | None = None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # Runtime protocol -------------------------------------------------------------------

    async def start(self, spec: ReleaseSpec) -> ReleaseHandle:
        gateway = await self._network_gateway() if spec.network == "bridge" else None
        existing = await self._find_by_marker(spec.marker)
        if existing is not None and existing["State"] == "running":
            return self._handle(spec, existing, gateway, await self._image_of(existing["Id"]))
        if existing is not None and existing["State"] != "created":
            # A copy that ran and stopped: start afresh rather than resume it.
            await self._remove(existing["Id"], log_path=str(spec.log_path))
            existing = None
        # A created container was never started (its attempt was interrupted, or another
        # attempt is about to start it): starting it twice is harmless.
        container = existing or await self._create(spec, gateway)
        await self._start_container(container["Id"], spec.image or "")
        return self._handle(spec, container, gateway, await self._image_of(container["Id"]))

    async def is_running(self, handle: ReleaseHandle) -> bool:
        details = await self._inspect_release(handle)
        return details is not None and is_running_state(details["State"])

    async def stop(self, handle: ReleaseHandle) -> None:
        for container_id in await self._containers_of(handle):
            await self._stop_container(container_id)
            await self._remove(container_id, log_path=handle.log_path)

    async def running(self) -> list[ReleaseHandle]:
        found = await self._call(
            "cannot list containers",
            lambda docker: docker.containers.list(filters={"label": [RELEASE_LABEL]}),
        )
        return [
            ReleaseHandle(
                runtime=self.name,
                marker=container["Labels"][RELEASE_LABEL],
                port=0,
                log_path="",
                container_id=container.id,
            )
            for container in found
            if is_running_state({"Running": container["State"] == "running"})
        ]

    async def exit_description(self, handle: ReleaseHandle) -> str:
        details = await self._inspect_release(handle)
        if details is None:
            return "the container no longer exists"
        return describe_state(details["State"])

    async def read_log(self, handle: ReleaseHandle, max_bytes: int) -> tuple[str, bool]:
        """The live container's output while it exists, else what the release log kept."""
        details = await self._inspect_release(handle)
        if details is not None:
            output = await self._output(details["Id"], tail=LOG_TAIL_LINES)
            data = output.encode("utf-8", "replace")
            if len(data) <= max_bytes:
                return output, output.count("\n") >= LOG_TAIL_LINES
            text = data[-max_bytes:].decode("utf-8", "replace")
            return text.partition("\n")[2], True
        if not handle.log_path:
            return "", False
        return await asyncio.to_thread(release_files.read_tail, Path(handle.log_path), max_bytes)

    async def check_engine(self) -> None:
        """Raise the runtime's own one-line error unless the engine answers this user."""
        await self._call("cannot ask the Docker engine its version", lambda d: d.version())

    # Talking to the engine --------------------------------------------------------------

    def _docker(self) -> aiodocker.Docker:
        if self._client is None:
            # No total timeout on the session: each call below sets its own bound.
            self._client = aiodocker.Docker(
                url=f"unix://{self.socket_path}",
                timeout=aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_SECONDS),
            )
        return self._client

    async def _call(
        self, what: str, request: Request[T], *, seconds: float = API_TIMEOUT_SECONDS
    ) -> T:
        """One request, bounded in time, with every failure turned into a one-line error."""
        try:
            async with asyncio.timeout(seconds):
                return await request(self._docker())
        except DockerError as error:
            if error.status == CONNECTION_FAILED:
                raise self._unreachable(error) from None
            raise EngineRefused(what, error.status, error.message) from None
        except aiohttp.ConnectionTimeoutError:
            raise RuntimeError_(
                f"cannot reach the Docker engine at {self.socket_path}: "
                f"no connection within {CONNECT_TIMEOUT_SECONDS:g}s"
            ) from None
        except TimeoutError:
            raise EngineSilent(
                f"{what}: the Docker engine at {self.socket_path} did not answer "
                f"within {seconds:g}s"
            ) from None

    def _unreachable(self, error: DockerError) -> RuntimeError_:
        cause = socket_error(error)
        if cause is not None and cause.errno in (errno.EACCES, errno.EPERM):
            group = socket_group(self.socket_path)
            return EngineAccessDenied(
                f"permission denied on the Docker socket {self.socket_path}: uid {os.getuid()} "
                f"may not use it (give the worker the socket's group{group}, or run it as root)"
            )
        reason = (cause.strerror or str(cause)) if cause is not None else error.message
        return RuntimeError_(f"cannot reach the Docker engine at {self.socket_path}: {reason}")

    def _container(self, container_id: str) -> Callable[[aiodocker.Docker], DockerContainer]:
        return lambda docker: docker.containers.container(container_id)

    # The releases' network ----------------------------------------------------------------

    async def _network_gateway(self) -> str:
        """The gateway address of the releases' network, creating the network if needed."""
        if self._gateway is not None:
            return self._gateway
        details = await self._inspect_network()
        if details is None:
            await self._create_network()
            details = await self._inspect_network()
            if details is None:
                raise RuntimeError_(f"the Docker network {self.network} vanished as it was made")
        gateway = bridge_gateway_address(details)
        if gateway is not None:
            self._gateway = gateway
            return gateway
        raise PermanentRuntimeError(
            f"the Docker network {self.network} has no IPv4 gateway to publish release ports on"
        )

    async def _inspect_network(self) -> dict[str, Any] | None:
        try:
            return await self._call(
                f"cannot inspect the Docker network {self.network}",
                lambda docker: network_details(docker, self.network),
            )
        except EngineRefused as refused:
            if refused.status == 404:
                return None
            raise

    async def _create_network(self) -> None:
        config = network_config(self.network)
        try:
            await self._call(
                f"cannot create the Docker network {self.network}",
                lambda docker: docker.networks.create(config),
            )
        except EngineRefused as refused:
            if refused.status != 409:  # made by a concurrent start: as good
                raise

    # Finding containers -----------------------------------------------------------------

    async def _find_by_marker(self, marker: str) -> dict[str, Any] | None:
        """The release's container (a running one first), from the container list."""
        containers = await self._list_by_marker(marker)
        containers.sort(key=lambda container: container.get("State") != "running")
        return containers[0] if containers else None

    async def _list_by_marker(self, marker: str) -> list[dict[str, Any]]:
        found = await self._call(
            "cannot list containers",
            lambda docker: docker.containers.list(
                all=True, filters={"label": [f"{RELEASE_LABEL}={marker}"]}
            ),
        )
        return [
            {"Id": container.id, "State": container["State"], "Labels": container["Labels"]}
            for container in found
        ]

    async def _inspect(self, container_id: str) -> dict[str, Any] | None:
        container = self._container(container_id)
        try:
            return await self._call(
                f"cannot inspect container {container_id[:12]}",
                lambda docker: container(docker).show(),
            )
        except EngineRefused as refused:
            if refused.status == 404:
                return None
            raise

    async def _image_of(self, container_id: str) -> str | None:
        """The container's image by digest: its registry digest if any, else its id."""
        details = await self._inspect(container_id)
        image_id = details.get("Image") if details is not None else None
        if not image_id:
            return None
        try:
            image = await self._call(
                f"cannot inspect image {image_id[:19]}",
                lambda docker: docker.images.inspect(image_id),
            )
        except EngineRefused:
            return str(image_id)
        digests = image.get("RepoDigests") or []
        return str(digests[0]) if digests else str(image_id)

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

    async def _create(self, spec: ReleaseSpec, gateway: str | None) -> dict[str, Any]:
        """The new container's Id and Labels; the existing one's if another attempt won."""
        image = spec.image or ""
        if not image:
            raise RuntimeError_(f"the {spec.bot_name} target names no image to run")
        try:
            return await self._create_request(spec, gateway)
        except EngineRefused as refused:
            if refused.status == 409:
                return await self._adopt(spec)
            if refused.status != 404:
                raise
        await self._pull(image)
        try:
            return await self._create_request(spec, gateway)
        except EngineRefused as refused:
            if refused.status == 409:
                return await self._adopt(spec)
            raise

    async def _create_request(self, spec: ReleaseSpec, gateway: str | None) -> dict[str, Any]:
        config = container_config(spec, network=self.network, publish_on=gateway)
        created = await self._call(
            f"cannot create a container from {spec.image}",
            lambda docker: docker.containers.create(config, name=container_name(spec)),
        )
        return {"Id": created.id, "Labels": config["Labels"]}

    async def _adopt(self, spec: ReleaseSpec) -> dict[str, Any]:
        """The name is taken: by another attempt at this release (adopt it), or by a stranger."""
        name = container_name(spec)
        deadline = asyncio.get_running_loop().time() + ADOPT_WAIT_SECONDS
        while (details := await self._inspect(name)) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError_(
                    f"the Docker engine says the name {name} is taken, yet no container "
                    f"by that name appeared within {ADOPT_WAIT_SECONDS:g}s"
                )
            await asyncio.sleep(0.1)
        labels = details["Config"].get("Labels") or {}
        if labels.get(RELEASE_LABEL) != spec.marker:
            raise RuntimeError_(
                f"a container named {name} exists but is not release "
                f"{spec.release_number} of {spec.bot_name}; remove it first"
            )
        return {"Id": details["Id"], "Labels": labels}

    async def _pull(self, image: str) -> None:
        problem = f"image {image} is not available locally and could not be pulled"
        try:
            await self._call(
                problem, lambda docker: docker.images.pull(image), seconds=self._pull_timeout
            )
        except EngineRefused as refused:
            # Refused as an error answer or inside the progress stream: either way the
            # registry will not give this image.
            raise ImageUnavailable(f"{problem}: {one_line(refused.detail)}") from None
        except EngineSilent:
            raise RuntimeError_(f"{problem}: no result within {self._pull_timeout:g}s") from None

    async def _start_container(self, container_id: str, image: str) -> None:
        container = self._container(container_id)
        try:
            # 304 (already started by a concurrent attempt) is not an error for aiodocker.
            await self._call(
                f"cannot start the container from {image}",
                lambda docker: container(docker).start(),
            )
        except EngineRefused:
            # A container that cannot start is useless; failing to remove it must not hide
            # why it did not start.
            try:
                await self._remove(container_id, log_path="")
            except RuntimeError_:
                pass
            raise

    # Stopping ---------------------------------------------------------------------------

    async def _stop_container(self, container_id: str) -> None:
        container = self._container(container_id)
        grace = max(0, round(self._stop_grace))
        try:
            # 304 (already stopped) is not an error for aiodocker.
            await self._call(
                f"cannot stop container {container_id[:12]}",
                lambda docker: container(docker).stop(t=grace),
                seconds=grace + API_TIMEOUT_SECONDS,
            )
        except EngineRefused as refused:
            if refused.status != 404:  # already gone
                raise

    async def _remove(self, container_id: str, *, log_path: str) -> None:
        """Remove the container, first keeping its output in the release log."""
        if log_path:
            await self._archive_output(container_id, Path(log_path))
        container = self._container(container_id)
        try:
            await self._call(
                f"cannot remove container {container_id[:12]}",
                lambda docker: container(docker).delete(force=True),
            )
        except EngineRefused as refused:
            if refused.status not in (404, 409):  # 409: a removal is already in progress
                raise

    # Output -----------------------------------------------------------------------------

    async def _output(self, container_id: str, *, tail: int | str) -> str:
        """The container's output (frames already joined by aiodocker); '' when it is gone."""
        container = self._container(container_id)
        try:
            pieces = await self._call(
                f"cannot read the output of container {container_id[:12]}",
                lambda docker: container(docker).log(stdout=True, stderr=True, tail=tail),
            )
        except EngineRefused:
            return ""
        return "".join(pieces)

    async def _archive_output(self, container_id: str, log_path: Path) -> None:
        """The container's output goes to the release log: it outlives the container."""
        output = await self._output(container_id, tail="all")
        details = await self._inspect(container_id)
        ending = describe_state(details["State"]) if details is not None else "container gone"
        if output and not output.endswith("\n"):
            output += "\n"
        text = (
            f"--- shipcord: output of container {container_id[:12]} ---\n"
            f"{output}--- shipcord: {ending} ---\n"
        )
        await asyncio.to_thread(append_text, log_path, text)

    def _handle(
        self,
        spec: ReleaseSpec,
        container: dict[str, Any],
        gateway: str | None,
        image: str | None,
    ) -> ReleaseHandle:
        port = (container.get("Labels") or {}).get(PORT_LABEL, "")
        return ReleaseHandle(
            runtime=self.name,
            marker=spec.marker,
            port=int(port) if port.isdigit() else spec.port,
            log_path=str(spec.log_path),
            container_id=container["Id"],
            host=gateway,
            image=image,
        )


# Pure helpers ---------------------------------------------------------------------------


def container_name(spec: ReleaseSpec) -> str:
    """A readable name that is unique per release, within Docker's name rules."""
    bot = NAME_FORBIDDEN.sub("-", spec.bot_name).strip("-.")[:40] or "bot"
    digest = hashlib.sha256(spec.marker.encode()).hexdigest()[:12]
    return f"shipcord-{bot}-{spec.release_number}-{digest}"


async def network_details(docker: aiodocker.Docker, name: str) -> dict[str, Any]:
    network = await docker.networks.get(name)
    return await network.show()


def network_config(name: str) -> dict[str, Any]:
    """A bridge network on which releases cannot talk to each other directly."""
    return {
        "Name": name,
        "Driver": "bridge",
        "CheckDuplicate": True,
        "Options": {"com.docker.network.bridge.enable_icc": "false"},
        "Labels": {NETWORK_LABEL: "releases"},
    }


def container_config(
    spec: ReleaseSpec, *, network: str = DEFAULT_NETWORK, publish_on: str | None = None
) -> dict[str, Any]:
    """The container for `spec`: on `network` with its port published on `publish_on`
    (the network's gateway), or on the host's network when the target asks for it."""
    port = f"{spec.port}/tcp"
    host_config: dict[str, Any] = {
        "NetworkMode": "host" if spec.network == "host" else network,
        "RestartPolicy": {"Name": "no"},
        # A tiny init as PID 1 passes SIGTERM on, so a bot without a signal handler
        # still stops at once instead of after the whole grace period.
        "Init": True,
    }
    config: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in environment(spec.env)],
        "Labels": {
            RELEASE_LABEL: spec.marker,
            BOT_LABEL: spec.bot_name,
            RELEASE_NUMBER_LABEL: str(spec.release_number),
            VERSION_LABEL: spec.version,
            PORT_LABEL: str(spec.port),
        },
        "Tty": False,
        "OpenStdin": False,
        "HostConfig": host_config,
    }
    if spec.network == "bridge":
        config["ExposedPorts"] = {port: {}}
        host_config["PortBindings"] = {
            port: [{"HostIp": publish_on or "127.0.0.1", "HostPort": str(spec.port)}]
        }
    if spec.command:
        config["Cmd"] = list(spec.command)
    return config


def environment(env: dict[str, str]) -> Iterable[tuple[str, str]]:
    return ((key, value) for key, value in env.items() if key not in HOST_ONLY_VARIABLES)


def socket_error(error: DockerError) -> OSError | None:
    """The operating system's reason behind aiodocker's "cannot connect", if it kept one."""
    cause: BaseException | None = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def socket_group(socket_path: str) -> str:
    try:
        return f", gid {os.stat(socket_path).st_gid}"
    except OSError:
        return ""


def is_running_state(state: dict[str, Any]) -> bool:
    return bool(
        state.get("Running")
        and not state.get("Restarting")
        and not state.get("Paused")
        and not state.get("Dead")
    )


def describe_state(state: dict[str, Any]) -> str:
    """How the container stands or ended, from the engine's own fields (never its output)."""
    if is_running_state(state):
        return "the container is still running"
    if state.get("Paused"):
        return "the container is paused"
    seconds = run_seconds(state)
    after = f" after {seconds:.1f} s" if seconds is not None else ""
    if state.get("OOMKilled"):
        return f"the container ran out of memory (status {state.get('ExitCode')}){after}"
    if state.get("Error"):
        return f"the container could not run: {one_line(str(state['Error']))}"
    if state.get("Status") == "created":
        return "the container was created but never started"
    return f"the container exited with status {state.get('ExitCode')}{after}"


def run_seconds(state: dict[str, Any]) -> float | None:
    """How long the container ran, from its StartedAt and FinishedAt (RFC 3339)."""
    try:
        started = datetime.fromisoformat(str(state["StartedAt"]))
        finished = datetime.fromisoformat(str(state["FinishedAt"]))
    except (KeyError, ValueError):
        return None
    if started.year < 2000 or finished < started:  # the engine's zero time: never ran
        return None
    return (finished - started).total_seconds()


def one_line(text: str, limit: int = OUTPUT_TAIL_CHARS) -> str:
    return text.strip().replace("\r", "").replace("\n", " | ")[-limit:]


def append_text(path: Path, text: str) -> None:
    release_files.append(path, text)
