"""The docker runtime against a real Docker engine: start, adopt, health, stop, failures.

Needs a Docker engine on /var/run/docker.sock and the local image shipcord-base:bookworm
(docker/make-base-image.sh makes it without a registry); the tests that need them skip
otherwise, saying why. The release image they run is built here FROM that base image
(tests/engine/docker_release/), tagged by the hash of its sources and of the base, so it is
built once and rebuilt only when either changes. The one pull that succeeds comes from a
registry on 127.0.0.1 that a test starts (Debian's docker-registry; skipped without it):
nothing here reaches another registry. Every container carries the label
shipcord.bot=<this run's bot name> and is removed after each test. The engine is checked
through aiodocker directly, independently of the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import pytest

from workflows.release_operator import free_port
from workflows.runtimes import (
    DockerRuntime,
    ReleaseHandle,
    ReleaseSpec,
    RuntimeError_,
    reachable_url,
)
from workflows.runtimes.docker import (
    BOT_LABEL,
    PORT_LABEL,
    RELEASE_LABEL,
    RELEASE_NUMBER_LABEL,
    VERSION_LABEL,
    EngineAccessDenied,
    ImageUnavailable,
    container_config,
    container_name,
)
from workflows.runtimes.docker_gateway import bridge_gateway_address

SOCKET = "/var/run/docker.sock"
BASE_IMAGE = "shipcord-base:bookworm"
RELEASE_IMAGE_SOURCES = Path(__file__).parent / "docker_release"
RELEASE_IMAGE_REPOSITORY = "shipcord-release-test"
PROBE_TIMEOUT = 5.0
BUILD_TIMEOUT = 120.0
DEADLINE_SECONDS = 15.0
STOP_GRACE = 2
# The releases' network of these tests: created by the runtime on first use, like the default.
NETWORK = f"shipcord-test-releases-{uuid.uuid4().hex[:8]}"
TEST_BOT = f"dockertest-{uuid.uuid4().hex[:8]}"
# A registry on a closed local port: the pull fails at once, with no DNS or network.
UNPULLABLE_IMAGE = "127.0.0.1:1/shipcord-missing:never"
NOBODY = 65534
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
"""


async def engine_problem(docker: aiodocker.Docker) -> str | None:
    """Why these tests cannot run here, or None."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await docker.version()
            await docker.images.inspect(BASE_IMAGE)
    except aiodocker.DockerError as error:
        if error.status == 404:
            return f"image {BASE_IMAGE} is absent (docker/make-base-image.sh makes it)"
        return f"no Docker engine answers at {SOCKET} ({error.message})"
    except TimeoutError:
        return f"no Docker engine answers at {SOCKET} within {PROBE_TIMEOUT:g}s"
    return None


async def release_image(docker: aiodocker.Docker) -> str:
    """The test release image, built FROM the local base image unless already there."""
    base_id = (await docker.images.inspect(BASE_IMAGE))["Id"]
    digest = hashlib.sha256(base_id.encode())
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted(RELEASE_IMAGE_SOURCES.iterdir()):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
                tar.add(path, arcname=path.name)
    tag = f"{RELEASE_IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"
    try:
        await docker.images.inspect(tag)
        return tag
    except aiodocker.DockerError as error:
        if error.status != 404:
            raise
    archive.seek(0)
    async with asyncio.timeout(BUILD_TIMEOUT):
        await docker.images.build(
            fileobj=archive, encoding="gzip", tag=tag, buildargs={"BASE_IMAGE": BASE_IMAGE}
        )
    return tag


@pytest.fixture(scope="module")
async def docker() -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker(url=f"unix://{SOCKET}")
    try:
        problem = await engine_problem(client)
        if problem:
            pytest.skip(problem)
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="module")
async def image(docker: aiodocker.Docker) -> str:
    return await release_image(docker)


@pytest.fixture(scope="module")
async def module_runtime(docker: aiodocker.Docker) -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime(
        SOCKET, stop_grace_seconds=STOP_GRACE, pull_timeout_seconds=20, network=NETWORK
    )
    yield runtime
    await runtime.close()
    with contextlib.suppress(aiodocker.DockerError):
        await (await docker.networks.get(NETWORK)).delete()


@pytest.fixture
async def runtime(
    module_runtime: DockerRuntime, docker: aiodocker.Docker
) -> AsyncIterator[DockerRuntime]:
    yield module_runtime
    for container in await labelled(docker):
        await container.delete(force=True)


@pytest.fixture(scope="module")
async def local_registry(
    docker: aiodocker.Docker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A real registry (Debian's docker-registry) on a free loopback port: its address."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("no local registry to pull from: apt-get install docker-registry")
    directory = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = directory / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=directory / "storage", port=port))
    # Logs at level error only: a pipe nobody reads while it runs stays far from full.
    registry = await asyncio.create_subprocess_exec(
        binary, "serve", str(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not await answers(f"http://127.0.0.1:{port}/v2/"):
            if registry.returncode is not None or time.monotonic() > deadline:
                if registry.returncode is None:
                    registry.kill()
                _, errors = await registry.communicate()
                raise AssertionError(f"the local registry did not start: {errors[-500:]!r}")
            await asyncio.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        if registry.returncode is None:
            registry.terminate()
            try:
                async with asyncio.timeout(10):
                    await registry.communicate()
            except TimeoutError:
                registry.kill()
                await registry.communicate()


async def labelled(docker: aiodocker.Docker, **extra: str) -> list[aiodocker.DockerContainer]:
    labels = [f"{BOT_LABEL}={TEST_BOT}", *(f"{key}={value}" for key, value in extra.items())]
    return await docker.containers.list(all=True, filters={"label": labels})


async def exists(docker: aiodocker.Docker, container_id: str) -> bool:
    try:
        await docker.containers.get(container_id)
    except aiodocker.DockerError as error:
        if error.status == 404:
            return False
        raise
    return True


def release_spec(
    tmp_path: Path, *, image: str, command: list[str] | None = None, number: int = 1
) -> ReleaseSpec:
    port = free_port()
    return ReleaseSpec(
        bot_name=TEST_BOT,
        release_number=number,
        version="1.0.0",
        marker=f"{TEST_BOT}#{number}@{uuid.uuid4().hex}",
        command=command or [],
        image=image,
        # The host's PATH, as the activities pass it: the runtime must keep the image's.
        env={"PATH": "/nonexistent/host/bin", "PORT": str(port), "DISCORD_TOKEN": "t"},
        working_directory=tmp_path,
        log_path=tmp_path / "releases" / f"{TEST_BOT}-{number}.log",
        port=port,
    )


def mode(name: str) -> list[str]:
    return ["python3", "/release/release.py", name]


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {DEADLINE_SECONDS:g}s")
        await asyncio.sleep(0.1)


async def config_as_the_runtime_makes_it(runtime: DockerRuntime, spec: ReleaseSpec) -> Any:
    gateway = await runtime._network_gateway()
    return container_config(spec, network=runtime.network, publish_on=gateway)


async def answers_healthy(handle: ReleaseHandle) -> bool:
    """The release's health URL, where shipcord reaches it (the handle's host, or loopback)."""
    return await answers(reachable_url(f"http://127.0.0.1:{handle.port}/healthz", handle))


async def answers(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_until_exited(runtime: DockerRuntime, handle: ReleaseHandle) -> None:
    async def has_exited() -> bool:
        return not await runtime.is_running(handle)

    await eventually(has_exited, "the release exiting")


# With a Docker engine ---------------------------------------------------------------------


async def test_started_release_runs_the_image_command_and_answers_its_health_url(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    # No command: the image's own CMD runs (the health server).
    spec = release_spec(tmp_path, image=image)

    handle = await runtime.start(spec)

    assert handle.runtime == "docker"
    assert handle.marker == spec.marker and handle.port == spec.port
    assert handle.container_id
    assert await runtime.is_running(handle)
    await eventually(lambda: answers_healthy(handle), "the health URL answering 200")
    details = await docker.containers.container(handle.container_id).show()
    assert details["Name"] == f"/{container_name(spec)}"
    # Its own bridge network; its port published on that network's gateway only.
    assert details["HostConfig"]["NetworkMode"] == NETWORK
    network = await (await docker.networks.get(NETWORK)).show()
    assert network["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    gateway = bridge_gateway_address(network)
    assert gateway is not None and handle.host == gateway
    assert details["HostConfig"]["PortBindings"] == {
        f"{spec.port}/tcp": [{"HostIp": gateway, "HostPort": str(spec.port)}]
    }
    assert details["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert (
        details["Config"]["Labels"].items()
        >= {
            RELEASE_LABEL: spec.marker,
            BOT_LABEL: TEST_BOT,
            RELEASE_NUMBER_LABEL: "1",
            VERSION_LABEL: "1.0.0",
            PORT_LABEL: str(spec.port),
        }.items()
    )


async def test_starting_again_adopts_the_running_container(
    runtime: DockerRuntime, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)

    first = await runtime.start(spec)
    second = await runtime.start(spec)

    assert second.container_id == first.container_id


async def test_adopted_release_keeps_the_port_it_was_started_with(
    runtime: DockerRuntime, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)
    first = await runtime.start(spec)
    # A retry whose handle was never saved picks a new port; the container has the old one.
    retry = spec.model_copy(update={"port": free_port()})

    adopted = await runtime.start(retry)

    assert adopted.container_id == first.container_id
    assert adopted.port == spec.port
    await eventually(lambda: answers_healthy(adopted), "the health URL answering 200")


async def test_a_created_but_never_started_container_is_adopted_and_started(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)
    # What an attempt interrupted between creating the container and starting it leaves.
    created = await docker.containers.create(
        await config_as_the_runtime_makes_it(runtime, spec), name=container_name(spec)
    )

    handle = await runtime.start(spec)

    assert handle.container_id == created.id
    assert await runtime.is_running(handle)
    assert len(await labelled(docker, **{RELEASE_LABEL: spec.marker})) == 1


async def test_concurrent_starts_of_one_release_share_one_container(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)

    handles = await asyncio.gather(*(runtime.start(spec) for _ in range(3)))

    assert len({handle.container_id for handle in handles}) == 1
    containers = await labelled(docker, **{RELEASE_LABEL: spec.marker})
    assert [container.id for container in containers] == [handles[0].container_id]
    assert await runtime.is_running(handles[0])


async def test_a_stranger_holding_the_release_name_is_a_clear_error(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)
    stranger = await config_as_the_runtime_makes_it(runtime, spec)
    stranger["Labels"] = {BOT_LABEL: TEST_BOT}
    await docker.containers.create(stranger, name=container_name(spec))

    with pytest.raises(RuntimeError_) as raised:
        await runtime.start(spec)

    assert str(raised.value) == (
        f"a container named {container_name(spec)} exists but is not release 1 of "
        f"{TEST_BOT}; remove it first"
    )


async def test_stop_removes_the_container_and_is_idempotent(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)
    handle = await runtime.start(spec)
    assert handle.container_id is not None
    await eventually(lambda: answers_healthy(handle), "the health URL answering 200")

    started = time.monotonic()
    await runtime.stop(handle)

    # The init process passes SIGTERM on, so no waiting out the grace period for SIGKILL.
    assert time.monotonic() - started < STOP_GRACE
    assert not await runtime.is_running(handle)
    assert not await exists(docker, handle.container_id)
    log = spec.log_path.read_text()
    assert "serving on" in log and "exited with status" in log
    await runtime.stop(handle)


async def test_stop_kills_a_release_that_ignores_sigterm_after_the_grace(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image, command=mode("stubborn"))
    handle = await runtime.start(spec)
    assert handle.container_id is not None
    await eventually(lambda: answers_healthy(handle), "the health URL answering 200")

    started = time.monotonic()
    await runtime.stop(handle)
    took = time.monotonic() - started

    assert STOP_GRACE - 0.5 <= took < STOP_GRACE + 10
    assert not await exists(docker, handle.container_id)
    log = spec.log_path.read_text()
    assert "ignoring SIGTERM" in log and "exited with status 137" in log


async def test_stop_finds_the_container_by_its_marker_alone(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)
    started = await runtime.start(spec)
    assert started.container_id is not None
    # What the activities know when a start crashed before its handle was saved.
    unsaved = ReleaseHandle(runtime="docker", marker=spec.marker, port=0, log_path="")

    assert await runtime.is_running(unsaved)
    await runtime.stop(unsaved)

    assert not await exists(docker, started.container_id)


async def test_exited_release_is_described_with_its_status_and_output(
    runtime: DockerRuntime, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image, command=mode("fail"))
    handle = await runtime.start(spec)

    await wait_until_exited(runtime, handle)
    description = await runtime.exit_description(handle)

    # How it ended, never what it printed: that is for its log, read by those allowed.
    assert re.fullmatch(r"the container exited with status 3 after \d+\.\d s", description)
    output, truncated = await runtime.read_log(handle, 4096)
    assert output.strip() == "bad config: no token" and not truncated


async def test_start_replaces_a_stopped_container_of_the_same_release(
    runtime: DockerRuntime, docker: aiodocker.Docker, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image, command=mode("fail"))
    first = await runtime.start(spec)
    assert first.container_id is not None
    await wait_until_exited(runtime, first)

    second = await runtime.start(spec)

    assert second.container_id != first.container_id
    assert not await exists(docker, first.container_id)
    log = spec.log_path.read_text()
    assert "bad config: no token" in log and "exited with status 3" in log


async def test_missing_image_that_cannot_be_pulled_is_a_clear_error(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=UNPULLABLE_IMAGE, command=["true"])

    with pytest.raises(ImageUnavailable) as raised:
        await runtime.start(spec)

    message = str(raised.value)
    assert message.startswith(
        f"image {UNPULLABLE_IMAGE} is not available locally and could not be pulled: "
    )
    assert "connection refused" in message
    assert "\n" not in message


async def test_a_missing_image_is_pulled_then_run(
    runtime: DockerRuntime,
    docker: aiodocker.Docker,
    image: str,
    local_registry: str,
    tmp_path: Path,
) -> None:
    remote = f"{local_registry}/shipcord-pull-test"
    await docker.images.tag(image, repo=remote, tag="latest")
    await docker.images.push(remote, tag="latest")
    await docker.images.delete(f"{remote}:latest")
    # No tag: the runtime must pull :latest, as `docker run` would, not every tag.
    spec = release_spec(tmp_path, image=remote)
    try:
        handle = await runtime.start(spec)

        assert await runtime.is_running(handle)
        await eventually(lambda: answers_healthy(handle), "the health URL answering 200")
        assert (await docker.images.inspect(f"{remote}:latest"))["Id"] == (
            await docker.images.inspect(image)
        )["Id"]
    finally:
        for container in await labelled(docker):
            await container.delete(force=True)
        await docker.images.delete(f"{remote}:latest", force=True)


async def test_command_missing_from_the_image_is_described(
    runtime: DockerRuntime, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image, command=["no-such-program-in-the-image"])
    # The container's init starts, then fails to run the command: the release exits 127.
    handle = await runtime.start(spec)

    await wait_until_exited(runtime, handle)
    description = await runtime.exit_description(handle)

    assert "exited with status 127" in description
    assert "no-such-program-in-the-image" not in description
    output, _ = await runtime.read_log(handle, 4096)
    assert "no-such-program-in-the-image" in output


async def test_a_docker_target_deploys_through_the_workflow(
    start_engine: Any, runtime: DockerRuntime, docker: aiodocker.Docker, image: str
) -> None:
    from tests.engine.harness import ECHO_TOKEN_ENV

    target = f"""
[bots.{TEST_BOT}]
runtime = "docker"
image = "{image}"
token_env = "{ECHO_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
healthy_after = 0.5
"""
    async with start_engine(extra_targets=target) as engine:
        first = await engine.deploy(bot=TEST_BOT, version="1.0.0")
        assert (await engine.deployments.result(first)).success
        second = await engine.deploy(bot=TEST_BOT, version="1.1.0")
        assert (await engine.deployments.result(second)).success
        running = await docker.containers.list(filters={"label": [f"{BOT_LABEL}={TEST_BOT}"]})
        assert len(running) == 1, "the first release's container was replaced"
        assert running[0]["Labels"][VERSION_LABEL] == "1.1.0"
        release = await engine.storage.get_release_of_workflow(second)
        assert release is not None and release.status == "active"
        handle = ReleaseHandle.model_validate_json(release.runtime_handle or "")
        assert handle.container_id == running[0].id


async def test_a_promotion_runs_the_image_staging_runs_after_its_tag_moved(
    start_engine: Any, runtime: DockerRuntime, docker: aiodocker.Docker, image: str
) -> None:
    from tests.engine.harness import ECHO_TOKEN_ENV

    repository = f"{TEST_BOT}-promoted"
    await docker.images.tag(image, repo=repository, tag="1.0.0")
    target = f"""
[bots.{TEST_BOT}]
runtime = "docker"
image = "{repository}:{{version}}"
token_env = "{ECHO_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
healthy_after = 0.5

[bots.{TEST_BOT}.environments.staging]

[bots.{TEST_BOT}.environments.production]
promote_from = "staging"
"""
    in_production = {"label": [f"{BOT_LABEL}={TEST_BOT}.production"]}
    try:
        async with start_engine(extra_targets=target) as engine:
            staging = await engine.deploy(bot=TEST_BOT, version="1.0.0", environment="staging")
            assert (await engine.deployments.result(staging)).success
            staged_image = (await docker.images.inspect(image))["Id"]
            # The tag moves to an image that cannot run the release at all.
            await docker.images.tag(BASE_IMAGE, repo=repository, tag="1.0.0")
            production = await engine.deploy(
                bot=TEST_BOT, version="1.0.0", environment="production"
            )
            result = await engine.deployments.result(production)
            assert result.success, result.error
            running = await docker.containers.list(filters=in_production)
            assert [container["ImageID"] for container in running] == [staged_image]
    finally:
        for environment in ("staging", "production"):
            label = {"label": [f"{BOT_LABEL}={TEST_BOT}.{environment}"]}
            for container in await docker.containers.list(all=True, filters=label):
                await container.delete(force=True)
        with contextlib.suppress(aiodocker.DockerError):
            await docker.images.delete(f"{repository}:1.0.0")


# Without a Docker engine ------------------------------------------------------------------


def test_the_runtime_touches_nothing_until_used(tmp_path: Path) -> None:
    # Built outside any event loop, as the worker builds it; closing it unused does nothing.
    runtime = DockerRuntime(str(tmp_path / "no-docker.sock"))

    asyncio.run(runtime.close())


async def test_unreachable_engine_is_a_clear_error(tmp_path: Path) -> None:
    missing_socket = tmp_path / "no-docker.sock"
    runtime = DockerRuntime(str(missing_socket))
    spec = release_spec(tmp_path, image=BASE_IMAGE, command=["true"])
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
            assert type(raised.value) is RuntimeError_
            assert str(raised.value) == (
                f"cannot reach the Docker engine at {missing_socket}: No such file or directory"
            )
    finally:
        await runtime.close()


@pytest.fixture
def forbidden_socket() -> Iterator[Path]:
    """A listening unix socket that only its owner may use, in a directory anyone may enter."""
    directory = Path(tempfile.mkdtemp(prefix="shipcord-socket-"))
    directory.chmod(0o755)
    path = directory / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen()
        path.chmod(0o600 if os.geteuid() == 0 else 0o000)
        yield path
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        directory.rmdir()


PROBE_PERMISSION = """
import asyncio, os, sys
from workflows.runtimes import DockerRuntime, ReleaseHandle

# Root passes any file mode: drop to nobody, as a worker outside the socket's group runs.
# Only now, once everything is imported, since the interpreter may live under /root.
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(int(sys.argv[2]))
    os.setuid(int(sys.argv[2]))

async def main():
    runtime = DockerRuntime(sys.argv[1])
    handle = ReleaseHandle(runtime="docker", marker="m", port=0, log_path="")
    try:
        await runtime.is_running(handle)
    except Exception as error:
        print(type(error).__name__, error, sep="\\n")
    finally:
        await runtime.close()

asyncio.run(main())
"""


def test_a_socket_that_refuses_this_user_says_permission_denied(forbidden_socket: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE_PERMISSION, str(forbidden_socket), str(NOBODY)],
        cwd=forbidden_socket.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )

    kind, message = probe.stdout.strip().split("\n")
    assert kind == EngineAccessDenied.__name__, probe.stderr
    uid = NOBODY if os.geteuid() == 0 else os.getuid()
    assert message.startswith(
        f"permission denied on the Docker socket {forbidden_socket}: uid {uid} may not use it "
        "(give the worker the socket's group, gid "
    )
    assert issubclass(EngineAccessDenied, RuntimeError_)


def test_container_names_follow_docker_rules_and_differ_per_release(tmp_path: Path) -> None:
    spec = release_spec(tmp_path, image=BASE_IMAGE).model_copy(
        update={"bot_name": "my bot/ä", "release_number": 3}
    )
    other = spec.model_copy(update={"marker": spec.marker + "-retry"})

    name = container_name(spec)

    assert name.startswith("shipcord-my-bot-3-")
    assert all(char.isascii() and (char.isalnum() or char in "_.-") for char in name)
    assert container_name(other) != name


def test_container_config_keeps_the_image_path_and_default_command(tmp_path: Path) -> None:
    config = container_config(release_spec(tmp_path, image=BASE_IMAGE))

    assert "Cmd" not in config
    assert not any(variable.startswith("PATH=") for variable in config["Env"])
    assert "DISCORD_TOKEN=t" in config["Env"]


# Isolation ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """A real embedded Temporal dev server on free loopback ports, as `shipcord run` starts it."""
    from shipcord.embedded_temporal import EmbeddedTemporal

    server = EmbeddedTemporal(
        tmp_path_factory.mktemp("embedded"), port=free_port(), ui_port=free_port()
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def probed(runtime: DockerRuntime, handle: ReleaseHandle, count: int) -> dict[str, str]:
    """What the `probe` release printed: address -> open/closed."""
    found: dict[str, str] = {}

    async def printed_all() -> bool:
        output, _ = await runtime.read_log(handle, 4096)
        found.clear()
        for line in output.splitlines():
            address, _, state = line.partition(" ")
            if state in ("open", "closed"):
                found[address] = state
        return len(found) == count

    await eventually(printed_all, "the probe's report")
    return found


async def test_a_bridged_release_cannot_reach_the_embedded_servers_ports(
    runtime: DockerRuntime, image: str, embedded_server: Any, tmp_path: Path
) -> None:
    ports = [embedded_server.port, embedded_server.ui_port]
    network = await runtime._network_gateway()
    # From the container: its own loopback, and the host through the network's gateway.
    targets = [f"{host}:{port}" for host in ("127.0.0.1", network) for port in ports]
    spec = release_spec(tmp_path, image=image, command=mode("probe") + targets)

    handle = await runtime.start(spec)

    assert await probed(runtime, handle, len(targets)) == dict.fromkeys(targets, "closed")
    # ...while its own port still answers shipcord, published on the gateway.
    await eventually(lambda: answers_healthy(handle), "the health URL answering 200")


async def test_a_host_network_release_shares_the_hosts_loopback(
    runtime: DockerRuntime,
    docker: aiodocker.Docker,
    image: str,
    embedded_server: Any,
    tmp_path: Path,
) -> None:
    # The contrast that shows the probe can see an open port: what `network = "host"` gives.
    targets = [f"127.0.0.1:{embedded_server.port}", f"127.0.0.1:{embedded_server.ui_port}"]
    spec = release_spec(tmp_path, image=image, command=mode("probe") + targets).model_copy(
        update={"network": "host"}
    )

    handle = await runtime.start(spec)

    assert handle.host is None
    assert await probed(runtime, handle, len(targets)) == dict.fromkeys(targets, "open")
    assert handle.container_id is not None
    details = await docker.containers.container(handle.container_id).show()
    assert details["HostConfig"]["NetworkMode"] == "host"


async def test_the_log_outlives_the_container(
    runtime: DockerRuntime, image: str, tmp_path: Path
) -> None:
    spec = release_spec(tmp_path, image=image)
    handle = await runtime.start(spec)
    await eventually(lambda: answers_healthy(handle), "the health URL answering 200")
    live, _ = await runtime.read_log(handle, 4096)
    assert f"serving on {spec.port}" in live

    await runtime.stop(handle)

    kept, _ = await runtime.read_log(handle, 4096)
    assert f"serving on {spec.port}" in kept and "exited with status" in kept
    assert spec.log_path.stat().st_mode & 0o777 == 0o600
    assert spec.log_path.parent.stat().st_mode & 0o777 == 0o700
