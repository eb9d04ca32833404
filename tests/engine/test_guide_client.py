"""The integration guide's own client (@temporalio/client on Node.js) drives a deployment."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest

from tests.engine.harness import ECHO_TOKEN_ENV, REPO, Engine
from tests.engine.test_environments import ENVIRONMENTS, STAGING_TOKEN_ENV
from tests.engine.test_workflow import StartEngine

CLIENT_DIR = REPO / "tests" / "guide_client"
NODE = shutil.which("node")


async def run_guide_client(engine: Engine, *arguments: str) -> dict[str, Any]:
    assert (CLIENT_DIR / "node_modules" / "@temporalio" / "client").is_dir(), (
        "the guide client's packages are missing: run `make test` (npm ci in tests/guide_client)"
    )
    address = engine.client.service_client.config.target_host
    node = await asyncio.create_subprocess_exec(
        str(NODE),
        str(CLIENT_DIR / "client.mjs"),
        address,
        engine.task_queue,
        *arguments,
        cwd=CLIENT_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=120)
    assert node.returncode == 0, stderr.decode()
    report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return report


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed on this machine")
async def test_the_typescript_sdk_client_starts_queries_signals_and_cancels(
    start_engine: StartEngine,
) -> None:
    async with start_engine() as engine:
        report = await run_guide_client(engine, "echo")

    paused, final = report["paused"], report["final"]
    assert (paused["state"], paused["botName"], paused["owner"]) == ("paused", "echo", "user-123")
    assert report["succeeded"]["success"] is True and report["succeeded"]["botId"] == "echo"
    assert (final["step"], final["progress"], final["state"]) == ("Deployed", 100, "succeeded")
    cancelled = report["cancelledResult"]
    assert cancelled["success"] is False and cancelled["state"] == "cancelled"


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed on this machine")
async def test_the_typescript_sdk_client_starts_a_deployment_in_an_environment(
    start_engine: StartEngine,
) -> None:
    # This module's Discord double knows one bot token: staging uses it too.
    targets = ENVIRONMENTS.replace(STAGING_TOKEN_ENV, ECHO_TOKEN_ENV)
    async with start_engine(extra_targets=targets) as engine:
        report = await run_guide_client(engine, "staged", "staging")
        releases = await engine.storage.list_releases("staged.staging")

    assert (report["paused"]["botName"], report["paused"]["environment"]) == ("staged", "staging")
    assert report["succeeded"]["success"] is True
    assert report["succeeded"]["environment"] == "staging"
    assert releases[0].version == "1.0.0"


def test_the_guide_client_is_locked() -> None:
    lock = json.loads((CLIENT_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@temporalio/client"]["version"] == "1.24.0"
