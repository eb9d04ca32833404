"""Session fixtures: one real Temporal dev server for the whole run, fresh queues per test."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from storage import Storage
from tests.discord_double import DiscordDouble
from tests.discord_double.validation import spec_validator


@pytest.fixture(autouse=True)
def requests_fit_discords_spec() -> Iterator[None]:
    """After every test: each running Discord double must have seen only requests that fit
    Discord's OpenAPI spec. A violation is blamed on the test during which it was made
    (then forgotten, so that a module-scoped double does not blame the next tests too)."""
    yield
    reports = []
    for double in list(DiscordDouble.running):
        report = double.violation_report()
        if report is not None:
            double.take_violations()
            reports.append(report)
    if reports:
        pytest.fail("\n".join(reports), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if spec_validator.cache_info().currsize:
        validator = spec_validator()
        terminalreporter.write_line(
            f"Discord spec: {validator.checked} REST requests to in-process doubles checked "
            f"({len(validator.routes_seen)} routes), {validator.violated} broke it"
        )
        if terminalreporter.config.option.verbose > 0:
            for (method, route), count in sorted(validator.routes_seen.items()):
                terminalreporter.write_line(f"  {count:6d}  {method} {route}")


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
