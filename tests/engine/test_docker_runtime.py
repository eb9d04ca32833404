"""The docker runtime against a real Docker engine: start, adopt, health, stop, failures.

Needs a Docker engine on /var/run/docker.sock and the local image shipcord-base:bookworm
(docker/make-base-image.sh makes it without a registry); the tests that need them skip
otherwise. Nothing here pulls from a registry. Every container carries the label
shipcord.bot=<this run's bot name> and is removed after each test.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from workflows.activities import free_port
from workflows.runtimes import DockerRuntime, ReleaseHandle, ReleaseSpec, RuntimeError_
from workflows.runtimes.docker import (
    BOT_LABEL,
    container_config,
    container_name,
    demultiplex,
    split_image_reference,
)

SOCKET = "/var/run/docker.sock"
BASE_IMAGE = "shipcord-base:bookworm"
PROBE_TIMEOUT = 5.0
DEADLINE_SECONDS = 15.0
TEST_BOT = f"dockertest-{uuid.uuid4().hex[:8]}"
# A registry on a closed local port: the pull fails at once, with no DNS or network.
UNPULLABLE_IMAGE = "127.0.0.1:1/shipcord-missing:never"

HEALTH_SERVER = """
import http.server, os
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
print("serving on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
"""
EXIT_3 = "import sys; print('bad config: no token', flush=True); sys.exit(3)"


class DockerApi:
    """Direct calls to the engine, independent of the runtime under test."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http

    async def call(self, method: str, path: str, **params: str) -> tuple[int, Any]:
        async with self._http.request(method, path, params=params) as response:
            body = await response.read()
            return response.status, json.loads(body) if body.strip() else None

    async def exists(self, container_id: str) -> bool:
        status, _ = await self.call("GET", f"/containers/{container_id}/json")
        return status == 200

    async def remove_labelled(self, label: str) -> None:
        filters = json.dumps({"label": [label]})
        _, containers = await self.call("GET", "/containers/json", all="1", filters=filters)
        for container in containers or []:
            await self.call("DELETE", f"/containers/{container['Id']}", force="1")


async def engine_problem(http: aiohttp.ClientSession) -> str | None:
    """Why these tests cannot run here, or None."""
    try:
        async with http.get("/_ping") as ping:
            if ping.status != 200:
                return f"the Docker engine at {SOCKET} answered /_ping with {ping.status}"
        async with http.get(f"/images/{BASE_IMAGE}/json") as image:
            if image.status != 200:
                return f"image {BASE_IMAGE} is absent (docker/make-base-image.sh makes it)"
    except (aiohttp.ClientError, TimeoutError) as error:
        return f"no Docker engine answers at {SOCKET} within {PROBE_TIMEOUT:g}s ({error})"
    return None


@pytest.fixture(scope="module")
async def docker_api() -> AsyncIterator[DockerApi]:
    http = aiohttp.ClientSession(
        base_url="http://docker",
        connector=aiohttp.UnixConnector(path=SOCKET),
        timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
    )
    async with http:
        problem = await engine_problem(http)
        if problem:
            pytest.skip(problem)
        yield DockerApi(http)


@pytest.fixture(scope="module")
async def module_runtime(docker_api: DockerApi) -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime(SOCKET, stop_grace_seconds=2, pull_timeout_seconds=20)
    yield runtime
    await runtime.close()


@pytest.fixture
async def runtime(
    module_runtime: DockerRuntime, docker_api: DockerApi
) -> AsyncIterator[DockerRuntime]:
    yield module_runtime
    await docker_api.remove_labelled(f"{BOT_LABEL}={TEST_BOT}")


def release_spec(
    tmp_path: Path, *, command: list[str], image: str = BASE_IMAGE, number: int = 1
) -> ReleaseSpec:
    port = free_port()
    return ReleaseSpec(
        bot_name=TEST_BOT,
        release_number=number,
        version="1.0.0",
        marker=f"{TEST_BOT}#{number}@{uuid.uuid4().hex}",
        command=command,
        image=image,
        # The host's PATH, as the activities pass it: the runtime must keep the image's.
        env={"PATH": "/nonexistent/host/bin", "PORT": str(port), "DISCORD_TOKEN": "t"},
        working_directory=tmp_path,
        log_path=tmp_path / "releases" / f"{TEST_BOT}-{number}.log",
        port=port,
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {DEADLINE_SECONDS:g}s")
        await asyncio.sleep(0.1)


async def answers_healthy(port: int) -> bool:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


# With a Docker engine ---------------------------------------------------------------------


async def test_started_release_runs_and_answers_its_health_url(
    runtime: DockerRuntime, docker_api: DockerApi, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["python3", "-c", HEALTH_SERVER])

    handle = await runtime.start(spec)

    assert handle.runtime == "docker"
    assert handle.marker == spec.marker and handle.port == spec.port
    assert handle.container_id
    assert await runtime.is_running(handle)
    await eventually(lambda: answers_healthy(spec.port), "the health URL answering 200")
    _, details = await docker_api.call("GET", f"/containers/{handle.container_id}/json")
    assert details["Name"] == f"/{container_name(spec)}"
    assert details["HostConfig"]["NetworkMode"] == "host"
    assert details["HostConfig"]["RestartPolicy"]["Name"] == "no"


async def test_starting_again_adopts_the_running_container(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["python3", "-c", HEALTH_SERVER])

    first = await runtime.start(spec)
    second = await runtime.start(spec)

    assert second.container_id == first.container_id


async def test_stop_removes_the_container_and_is_idempotent(
    runtime: DockerRuntime, docker_api: DockerApi, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["python3", "-c", HEALTH_SERVER])
    handle = await runtime.start(spec)
    assert handle.container_id is not None
    await eventually(lambda: answers_healthy(spec.port), "the health URL answering 200")

    started = time.monotonic()
    await runtime.stop(handle)

    # The init process passes SIGTERM on, so no waiting out the grace period for SIGKILL.
    assert time.monotonic() - started < 2
    assert not await runtime.is_running(handle)
    assert not await docker_api.exists(handle.container_id)
    assert "serving on" in spec.log_path.read_text()
    await runtime.stop(handle)


async def test_stop_finds_the_container_by_its_marker_alone(
    runtime: DockerRuntime, docker_api: DockerApi, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["python3", "-c", HEALTH_SERVER])
    started = await runtime.start(spec)
    assert started.container_id is not None
    # What the activities know when a start crashed before its handle was saved.
    unsaved = ReleaseHandle(runtime="docker", marker=spec.marker, port=0, log_path="")

    assert await runtime.is_running(unsaved)
    await runtime.stop(unsaved)

    assert not await docker_api.exists(started.container_id)


async def test_exited_release_is_described_with_its_status_and_output(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["python3", "-c", EXIT_3])
    handle = await runtime.start(spec)

    async def has_exited() -> bool:
        return not await runtime.is_running(handle)

    await eventually(has_exited, "the release exiting")
    description = await runtime.exit_description(handle)

    assert "exited with status 3" in description
    assert "bad config: no token" in description


async def test_start_replaces_a_stopped_container_of_the_same_release(
    runtime: DockerRuntime, docker_api: DockerApi, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["python3", "-c", EXIT_3])
    first = await runtime.start(spec)
    assert first.container_id is not None

    async def has_exited() -> bool:
        return not await runtime.is_running(first)

    await eventually(has_exited, "the release exiting")

    second = await runtime.start(spec)

    assert second.container_id != first.container_id
    assert not await docker_api.exists(first.container_id)
    log = spec.log_path.read_text()
    assert "bad config: no token" in log and "exited with status 3" in log


async def test_missing_image_that_cannot_be_pulled_is_a_clear_error(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["true"], image=UNPULLABLE_IMAGE)

    with pytest.raises(RuntimeError_) as raised:
        await runtime.start(spec)

    message = str(raised.value)
    assert message.startswith(
        f"image {UNPULLABLE_IMAGE} is not available locally and could not be pulled: "
    )
    assert "\n" not in message


async def test_command_missing_from_the_image_is_described(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, command=["no-such-program-in-the-image"])
    # The container's init starts, then fails to run the command: the release exits 127.
    handle = await runtime.start(spec)

    async def has_exited() -> bool:
        return not await runtime.is_running(handle)

    await eventually(has_exited, "the release exiting")
    description = await runtime.exit_description(handle)

    assert "exited with status 127" in description
    assert "no-such-program-in-the-image" in description


# Without a Docker engine ------------------------------------------------------------------


async def test_unreachable_engine_is_a_clear_error(tmp_path: Path) -> None:
    missing_socket = tmp_path / "no-docker.sock"
    runtime = DockerRuntime(str(missing_socket))
    spec = release_spec(tmp_path, command=["true"])
    handle = ReleaseHandle(runtime="docker", marker=spec.marker, port=0, log_path="")
    try:
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: runtime.start(spec),
            lambda: runtime.is_running(handle),
            lambda: runtime.stop(handle),
        ]
        for attempt in attempts:
            with pytest.raises(RuntimeError_) as raised:
                await attempt()
            assert str(raised.value) == (
                f"cannot reach the Docker engine at {missing_socket}: No such file or directory"
            )
    finally:
        await runtime.close()


def test_container_names_follow_docker_rules_and_differ_per_release(tmp_path: Path) -> None:
    spec = release_spec(tmp_path, command=[]).model_copy(
        update={"bot_name": "my bot/ä", "release_number": 3}
    )
    other = spec.model_copy(update={"marker": spec.marker + "-retry"})

    name = container_name(spec)

    assert name.startswith("shipcord-my-bot-3-")
    assert all(char.isascii() and (char.isalnum() or char in "_.-") for char in name)
    assert container_name(other) != name


def test_container_config_keeps_the_image_path_and_default_command(tmp_path: Path) -> None:
    config = container_config(release_spec(tmp_path, command=[]))

    assert "Cmd" not in config
    assert not any(variable.startswith("PATH=") for variable in config["Env"])
    assert "DISCORD_TOKEN=t" in config["Env"]


def test_image_references_split_for_the_pull_api() -> None:
    assert split_image_reference("python") == ("python", "latest")
    assert split_image_reference("python:3.11-slim") == ("python", "3.11-slim")
    assert split_image_reference("localhost:5000/bot") == ("localhost:5000/bot", "latest")
    assert split_image_reference("localhost:5000/bot:2") == ("localhost:5000/bot", "2")
    assert split_image_reference("bot@sha256:abc") == ("bot", "sha256:abc")


def test_log_stream_frames_are_joined() -> None:
    def frame(stream: int, payload: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

    assert demultiplex(frame(1, b"out\n") + frame(2, b"err\n")) == b"out\nerr\n"
    assert demultiplex(b"plain tty output\n") == b"plain tty output\n"


async def test_a_docker_target_deploys_through_the_workflow(
    start_engine: Any, runtime: DockerRuntime, docker_api: DockerApi
) -> None:
    from tests.engine.harness import ECHO_TOKEN_ENV

    target = f"""
[bots.{TEST_BOT}]
runtime = "docker"
image = "{BASE_IMAGE}"
command = ["python3", "-c", {json.dumps(HEALTH_SERVER)}]
token_env = "{ECHO_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
healthy_after = 0.5
"""
    async with start_engine(extra_targets=target) as engine:
        first = await engine.deploy(bot=TEST_BOT, version="1.0.0")
        assert (await engine.deployments.result(first)).success
        second = await engine.deploy(bot=TEST_BOT, version="1.1.0")
        assert (await engine.deployments.result(second)).success
        filters = json.dumps({"label": [f"{BOT_LABEL}={TEST_BOT}"]})
        _, running = await docker_api.call("GET", "/containers/json", filters=filters)
        assert len(running) == 1, "the first release's container was replaced"
        release = await engine.storage.get_release_of_workflow(second)
        assert release is not None and release.status == "active"
        handle = ReleaseHandle.model_validate_json(release.runtime_handle or "")
        assert handle.container_id == running[0]["Id"]
