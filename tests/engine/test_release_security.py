"""What a release prints stays in its log, what a release starts dies with it, and a release
may run as another user: real processes, a real Temporal server, the Discord double."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import psutil
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tests.engine.conftest import ECHO_TOKEN
from tests.engine.harness import Engine, wait_until
from tests.leaks import history_plaintext, hits
from tests.ports import NEVER_HEALTHY
from workflows.activities import DeploymentActivities
from workflows.activity_models import DeploymentRef, ValidatedDeployment
from workflows.release_logs import ReleaseLogs
from workflows.runtimes.process import MARKER_VARIABLE

StartEngine = Callable[..., AbstractAsyncContextManager[Engine]]
LEAKY_TOKEN_ENV = "SHIPCORD_TEST_LEAKY_TOKEN"
LEAKY_TOKEN = "leaky-bot-secret-token-0a1b2c3d4e5f"
# Prints its own token and its whole environment, as a careless bot does, then exits 3.
LEAK = (
    "import os, sys; "
    'print("fatal: login refused for token", os.environ["DISCORD_TOKEN"]); '
    '[print(name + "=" + value) for name, value in os.environ.items()]; '
    "sys.stdout.flush(); sys.exit(3)"
)
# Starts a child in a session of its own (it keeps the marker in its environment), says
# which, and exits: the health check fails and the rollback must stop the child too.
FORK = (
    "import subprocess, sys; "
    'child = subprocess.Popen(["setsid", "sleep", "600"]); '
    'print("child", child.pid, flush=True); sys.exit(4)'
)
# Run as another user: can it read shipcord's environment, or shipcord's data folder?
SNOOP = (
    "import os, sys, time\n"
    "def attempt(what, path):\n"
    "    try:\n"
    "        open(path, 'rb').read(1)\n"
    "        print(what, 'readable', flush=True)\n"
    "    except OSError as error:\n"
    "        print(what, 'denied', error.errno, flush=True)\n"
    "attempt('environ', '/proc/' + sys.argv[1] + '/environ')\n"
    "attempt('database', sys.argv[2])\n"
    "time.sleep(600)\n"
)


def targets(data_dir: Path) -> str:
    python = sys.executable
    system_python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    return f"""
[bots.leaky]
command = ["{python}", "-c", '{LEAK}']
token_env = "{LEAKY_TOKEN_ENV}"
healthy_after = 1
{NEVER_HEALTHY}
[bots.forker]
command = ["{python}", "-c", '{FORK}']
token_env = "{LEAKY_TOKEN_ENV}"
healthy_after = 1
{NEVER_HEALTHY}
[bots.snoop]
command = ["{system_python}", "-c", "{SNOOP.encode("unicode_escape").decode()}",
           "{os.getpid()}", "{data_dir / "shipcord.db"}"]
token_env = "{LEAKY_TOKEN_ENV}"
user = "nobody"
healthy_after = 0.5
"""


@pytest.fixture(autouse=True)
def leaky_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEAKY_TOKEN_ENV, LEAKY_TOKEN)


@pytest.fixture
async def engine(start_engine: StartEngine, tmp_path: Path) -> AsyncIterator[Engine]:
    async with start_engine(extra_targets=targets(tmp_path / "data")) as started:
        if started.double.state.bots_by_token.get(LEAKY_TOKEN) is None:
            started.double.add_bot(token=LEAKY_TOKEN, username="leaky")
        yield started


def everything_stored(engine: Engine) -> bytes:
    """shipcord's database with its WAL, as bytes on disk."""
    found = b""
    for path in engine.data_dir.glob("shipcord.db*"):
        found += path.read_bytes()
    return found


async def history_text(engine: Engine, workflow_id: str) -> str:
    history = await engine.client.get_workflow_handle(workflow_id).fetch_history()
    return history_plaintext(history)


async def test_a_release_that_prints_its_token_fails_without_a_word_of_its_output(
    engine: Engine,
) -> None:
    workflow_id = await engine.deploy(bot="leaky", version="1.0.0")
    result = await engine.deployments.result(workflow_id)
    status = await engine.deployments.status(workflow_id)

    assert not result.success
    assert result.error is not None
    assert result.error.startswith(
        "Release 1 of leaky is not running: the process exited with status 3 after "
    )
    assert status.last_error == result.error
    history = await history_text(engine, workflow_id)
    assert "Release 1 of leaky is not running" in history, "payloads were decoded"
    stored = everything_stored(engine)
    assert hits([LEAKY_TOKEN], history, stored, repr(engine.double.state.messages)) == []
    # Not a word of its output: what it printed first is in neither.
    assert "login refused for token" not in result.error
    assert [line for line in history.splitlines() if "for token leaky" in line] == []

    # The output is in its log, for those allowed to read it, and only redacted.
    async with ReleaseLogs(engine.storage) as logs:
        tail = await logs.of_deployment(workflow_id)
    assert tail is not None and tail.problem is None
    assert (tail.bot_name, tail.release_number, tail.workflow_id) == ("leaky", 1, workflow_id)
    assert "fatal: login refused for token ***" in tail.text
    assert "DISCORD_TOKEN=***" in tail.text and f"{MARKER_VARIABLE}=leaky#1@" in tail.text
    assert "exited with status 3 after" in tail.text
    assert LEAKY_TOKEN not in tail.text
    log_file = engine.data_dir / "releases" / "leaky-1.log"
    assert LEAKY_TOKEN in log_file.read_text(), "the raw log is the release's own"
    assert log_file.stat().st_mode & 0o777 == 0o600
    assert log_file.parent.stat().st_mode & 0o777 == 0o700


async def test_the_log_of_a_bots_newest_release_and_a_bounded_tail(engine: Engine) -> None:
    first = await engine.deploy(bot="echo", version="1.0.0")
    assert (await engine.deployments.result(first)).success
    async with ReleaseLogs(engine.storage) as logs:
        newest = await logs.of_release("echo")
        short = await logs.of_release("echo", 1, max_chars=40)
        missing = await logs.of_release("echo", 9)
    assert newest is not None and newest.release_number == 1
    assert "starting release 1" in newest.text
    assert ECHO_TOKEN not in newest.text
    assert short is not None and len(short.text) <= 40 and short.truncated
    assert missing is None


def failing_with_a_secret(activities: DeploymentActivities) -> Callable[..., Any]:
    @activity.defn(name="validate_deployment")
    async def validate_deployment(ref: DeploymentRef) -> ValidatedDeployment:
        try:
            raise RuntimeError(f"inner detail with {ECHO_TOKEN}")
        except RuntimeError as inner:
            raise ApplicationError(
                f"Discord said no to {ECHO_TOKEN}", type="ValidationError", non_retryable=True
            ) from inner

    return validate_deployment


async def test_an_activity_error_naming_a_token_reaches_temporal_redacted(
    start_engine: StartEngine,
) -> None:
    async with start_engine(replace={"validate_deployment": failing_with_a_secret}) as engine:
        workflow_id = await engine.deploy(bot="echo", version="1.0.0")
        result = await engine.deployments.result(workflow_id)
        history = await history_text(engine, workflow_id)

    assert result.error == "Discord said no to ***"
    assert ECHO_TOKEN not in history
    # The cause chain is kept, redacted; the error kept its type (non-retryable).
    assert "inner detail with ***" in history
    assert engine.attempts("validate_deployment") == [1]


async def test_a_child_in_its_own_session_is_stopped_on_rollback(engine: Engine) -> None:
    workflow_id = await engine.deploy(bot="forker", version="1.0.0")
    result = await engine.deployments.result(workflow_id)

    assert not result.success
    assert result.compensations[0].name == "stop_new_release"
    log = (engine.data_dir / "releases" / "forker-1.log").read_text()
    child_pid = int(log.split("child ", 1)[1].split()[0])

    def gone() -> bool:
        try:
            return psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    await wait_until(lambda: _async(gone()), timeout=10, what="the setsid child to be stopped")
    assert engine.processes() == []


async def _async(value: bool) -> bool:
    return value


@pytest.mark.skipif(os.geteuid() != 0, reason="running a release as another user needs root")
async def test_a_release_runs_as_the_user_its_target_names(engine: Engine) -> None:
    nobody = pwd.getpwnam("nobody")
    workflow_id = await engine.deploy(bot="snoop", version="1.0.0")
    result = await engine.deployments.result(workflow_id)
    assert result.success, result.error

    [process] = engine.processes()
    assert process.uids().real == nobody.pw_uid
    assert process.gids().real == nobody.pw_gid
    assert set(process.gids()) == {nobody.pw_gid}, "no supplementary group of shipcord's"
    log = engine.data_dir / "releases" / "snoop-1.log"
    await wait_until(
        lambda: _async("database" in log.read_text()), timeout=10, what="the snoop's report"
    )
    report = log.read_text()
    assert "environ denied" in report and "database denied" in report
    assert json.dumps(report)  # printable
