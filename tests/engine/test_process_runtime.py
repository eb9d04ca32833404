"""The process runtime on real processes: idempotent starts, pid reuse, stop escalation."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from workflows.runtimes import ProcessRuntime, ReleaseHandle, ReleaseSpec

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)


def spec(tmp_path: Path, command: list[str]) -> ReleaseSpec:
    return ReleaseSpec(
        bot_name="proc",
        release_number=1,
        version="1.0.0",
        marker=f"proc#1@{uuid.uuid4().hex}",
        command=command,
        env={"PATH": os.environ["PATH"], "DISCORD_TOKEN": "t", "PORT": "1"},
        working_directory=tmp_path,
        log_path=tmp_path / "releases" / "proc-1.log",
        port=1,
    )


async def test_start_is_idempotent_and_stop_is_quiet_the_second_time(tmp_path: Path) -> None:
    runtime = ProcessRuntime(stop_grace_seconds=5)
    release = spec(tmp_path, ["sleep", "120"])
    first = await runtime.start(release)
    # A retried start (for instance after the handle was lost) adopts the same process.
    again = await runtime.start(release)
    assert first.pid == again.pid and await runtime.is_running(first)
    assert os.getsid(first.pid or 0) == first.pid, "a session of its own: it outlives us"
    await runtime.stop(first)
    assert not await runtime.is_running(first)
    await runtime.stop(first)


async def test_a_recycled_pid_is_never_taken_for_a_release(tmp_path: Path) -> None:
    runtime = ProcessRuntime(stop_grace_seconds=1)
    bystander = await asyncio.create_subprocess_exec("sleep", "120")
    try:
        started = psutil.Process(bystander.pid).create_time()
        recycled = ReleaseHandle(
            runtime="process",
            marker=f"gone#1@{uuid.uuid4().hex}",
            port=1,
            log_path=str(tmp_path / "gone.log"),
            pid=bystander.pid,
            process_started_at=started - 1000,
        )
        assert not await runtime.is_running(recycled)
        await runtime.stop(recycled)
        assert bystander.returncode is None, "the unrelated process must survive"
        assert psutil.Process(bystander.pid).is_running()
    finally:
        bystander.kill()
        await bystander.wait()


async def test_a_release_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path,
) -> None:
    runtime = ProcessRuntime(stop_grace_seconds=0.5)
    release = spec(tmp_path, [sys.executable, "-c", IGNORES_SIGTERM])
    handle = await runtime.start(release)
    deadline = asyncio.get_running_loop().time() + 10
    while "ready" not in release.log_path.read_text():
        assert asyncio.get_running_loop().time() < deadline, "the release never got ready"
        await asyncio.sleep(0.02)
    await runtime.stop(handle)
    assert not await runtime.is_running(handle)
    deadline = asyncio.get_running_loop().time() + 10
    while "killed by signal 9" not in release.log_path.read_text():
        assert asyncio.get_running_loop().time() < deadline, release.log_path.read_text()
        await asyncio.sleep(0.02)


async def test_a_command_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    from workflows.runtimes import RuntimeError_

    with pytest.raises(RuntimeError_, match="cannot start 'no-such-program-here'"):
        await ProcessRuntime().start(spec(tmp_path, ["no-such-program-here"]))
