"""The integration guide's own client (@temporalio/client on Node.js) drives a deployment."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from tests.engine.harness import REPO
from tests.engine.test_workflow import StartEngine

CLIENT_DIR = REPO / "tests" / "guide_client"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed on this machine")
async def test_the_typescript_sdk_client_starts_queries_signals_and_cancels(
    start_engine: StartEngine,
) -> None:
    assert (CLIENT_DIR / "node_modules" / "@temporalio" / "client").is_dir(), (
        "the guide client's packages are missing: run `make test` (npm ci in tests/guide_client)"
    )
    async with start_engine() as engine:
        address = engine.client.service_client.config.target_host
        node = await asyncio.create_subprocess_exec(
            str(NODE),
            str(CLIENT_DIR / "client.mjs"),
            address,
            engine.task_queue,
            "echo",
            cwd=CLIENT_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=120)
        assert node.returncode == 0, stderr.decode()
        report = json.loads(stdout.decode().strip().splitlines()[-1])

    paused, final = report["paused"], report["final"]
    assert (paused["state"], paused["botName"], paused["owner"]) == ("paused", "echo", "user-123")
    assert report["succeeded"]["success"] is True and report["succeeded"]["botId"] == "echo"
    assert (final["step"], final["progress"], final["state"]) == ("Deployed", 100, "succeeded")
    cancelled = report["cancelledResult"]
    assert cancelled["success"] is False and cancelled["state"] == "cancelled"


def test_the_guide_client_is_locked() -> None:
    lock = json.loads((CLIENT_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@temporalio/client"]["version"] == "1.24.0"
