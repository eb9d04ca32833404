"""Session fixtures: one real Temporal dev server for the whole run, fresh queues per test."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from storage import Storage


def find_executable(name: str) -> str:
    """A binary installed into this interpreter's environment (the venv's bin directory)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the project with its dev extras")
    return found


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=find_executable("temporal"),
        # Idle workers poll again every 2 s instead of every minute, so a host's heartbeat
        # (its workers' last poll) goes stale within seconds of its last worker dying.
        dev_server_extra_args=[
            "--dynamic-config-value",
            'matching.longPollExpirationInterval="2s"',
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    async with await Storage.open(tmp_path / "shipcord.db") as opened:
        yield opened
