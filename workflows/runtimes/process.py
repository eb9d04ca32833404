"""The `process` runtime: each release is a detached local process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

import workflows.runtimes.release_files as release_files
from workflows.runtimes.base import PermanentRuntimeError, ReleaseHandle, ReleaseSpec, RuntimeError_

MARKER_VARIABLE = "SHIPCORD_RELEASE"
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
START_TIME_TOLERANCE = 0.05
POLL_SECONDS = 0.05
# How long a release seen ended may take its reaper to record how it ended.
REAP_WAIT_SECONDS = 5.0
# The reaper thread of each release this process started, by pid, until it has recorded
# how the release ended.
REAPERS: dict[int, threading.Thread] = {}


class ProcessRuntime:
    name = "process"

    def __init__(self, stop_grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        self._stop_grace = stop_grace_seconds

    async def start(self, spec: ReleaseSpec) -> ReleaseHandle:
        running = await asyncio.to_thread(find_process_with_marker, spec.marker)
        if running is not None:
            return self._handle(spec, running)
        return await asyncio.to_thread(self._launch, spec)

    def _launch(self, spec: ReleaseSpec) -> ReleaseHandle:
        identity = run_as(spec.run_as)
        env = dict(spec.env, **{MARKER_VARIABLE: spec.marker})
        log = release_files.open_log(spec.log_path)
        try:
            os.write(log, f"--- shipcord: starting release {spec.release_number} ---\n".encode())
            started = time.monotonic()
            try:
                child = subprocess.Popen(
                    spec.command,
                    cwd=spec.working_directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **identity,
                )
            except OSError as error:
                raise RuntimeError_(
                    f"cannot start {spec.command[0]!r}: {error.strerror or error}"
                ) from None
        finally:
            os.close(log)
        # Reap the child if it exits while we still are its parent (no zombies), and record
        # how it ended.
        reaper = threading.Thread(
            target=reap,
            args=(child, spec.log_path, started),
            name=f"reap-{child.pid}",
            daemon=True,
        )
        REAPERS[child.pid] = reaper
        reaper.start()
        try:
            return self._handle(spec, psutil.Process(child.pid))
        except psutil.NoSuchProcess:
            # Already gone: a handle without a pid is never running (its record says why).
            return self._handle(spec, None)

    def _handle(self, spec: ReleaseSpec, process: psutil.Process | None) -> ReleaseHandle:
        return ReleaseHandle(
            runtime=self.name,
            marker=spec.marker,
            port=spec.port,
            log_path=str(spec.log_path),
            pid=process.pid if process is not None else None,
            process_started_at=process.create_time() if process is not None else None,
        )

    async def is_running(self, handle: ReleaseHandle) -> bool:
        return await asyncio.to_thread(lambda: own_process(handle) is not None)

    async def stop(self, handle: ReleaseHandle) -> None:
        await asyncio.to_thread(self._stop, handle)

    def _stop(self, handle: ReleaseHandle) -> None:
        leader = own_process(handle) or find_process_with_marker(handle.marker)
        members = release_members(handle, leader)
        if not members:
            return
        if leader is not None:
            signal_group(leader.pid, signal.SIGTERM)
        send(members, signal.SIGTERM)
        survivors = wait_for_exit(members, self._stop_grace)
        if not survivors:
            return
        if leader is not None:
            signal_group(leader.pid, signal.SIGKILL)
        send(survivors, signal.SIGKILL)
        stubborn = wait_for_exit(survivors, KILL_WAIT_SECONDS)
        if stubborn:
            pids = ", ".join(str(process.pid) for process in stubborn)
            raise RuntimeError_(f"release processes {pids} did not stop")

    async def running(self) -> list[ReleaseHandle]:
        return await asyncio.to_thread(self._running)

    def _running(self) -> list[ReleaseHandle]:
        handles = []
        for process in psutil.process_iter():
            try:
                marker = process.environ().get(MARKER_VARIABLE)
                # The session leader is the release itself; its children share the marker.
                if marker and process.pid == os.getsid(process.pid) and is_alive(process):
                    handles.append(
                        ReleaseHandle(
                            runtime=self.name,
                            marker=marker,
                            port=0,
                            log_path="",
                            pid=process.pid,
                            process_started_at=process.create_time(),
                        )
                    )
            except (psutil.Error, OSError):
                continue
        return handles

    async def exit_description(self, handle: ReleaseHandle) -> str:
        return await asyncio.to_thread(describe_exit, handle)

    async def read_log(self, handle: ReleaseHandle, max_bytes: int) -> tuple[str, bool]:
        if not handle.log_path:
            return "", False
        return await asyncio.to_thread(release_files.read_tail, Path(handle.log_path), max_bytes)


def run_as(user: str | None) -> dict[str, Any]:
    """Popen's identity options for a release that names a user; none when it does not."""
    if user is None:
        return {}
    try:
        account = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise PermanentRuntimeError(f"no user {user!r} on this machine") from None
    if account.pw_uid == os.geteuid():
        return {}
    if os.geteuid() != 0:
        raise PermanentRuntimeError(
            f"cannot run a release as {user!r}: shipcord runs as uid {os.geteuid()}, "
            "and only root may start a process as another user"
        )
    # No supplementary groups: the release gets the user's own group and nothing of root's.
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def reap(child: subprocess.Popen[bytes], log_path: Path, started: float) -> None:
    try:
        status = child.wait()
        seconds = round(time.monotonic() - started, 3)
        ending = release_files.describe_ending(status, seconds)
        with contextlib.suppress(OSError):
            release_files.append(log_path, f"--- shipcord: release process {ending} ---\n")
        release_files.write_exit_record(
            log_path, {"pid": child.pid, "status": status, "seconds": seconds}
        )
    finally:
        REAPERS.pop(child.pid, None)


def describe_exit(handle: ReleaseHandle) -> str:
    """How the release's process ended, without a word of its output."""
    reaper = REAPERS.get(handle.pid) if handle.pid is not None else None
    if reaper is not None:
        # Seen ended before its reaper recorded how: that record is a moment away.
        reaper.join(REAP_WAIT_SECONDS)
    record = release_files.read_exit_record(Path(handle.log_path)) if handle.log_path else None
    if record is not None and (handle.pid is None or record.get("pid") == handle.pid):
        return "the process " + release_files.describe_ending(
            record.get("status"), record.get("seconds")
        )
    # Ended while another shipcord was its parent (or was never watched): no status known.
    return "the process " + release_files.describe_ending(None, None)


def own_process(handle: ReleaseHandle) -> psutil.Process | None:
    """The release's process if it is still the one we started and still alive."""
    if handle.pid is None or handle.process_started_at is None:
        return None
    try:
        process = psutil.Process(handle.pid)
        if abs(process.create_time() - handle.process_started_at) > START_TIME_TOLERANCE:
            return None
    except psutil.Error:
        return None
    return process if is_alive(process) else None


def release_members(handle: ReleaseHandle, leader: psutil.Process | None) -> list[psutil.Process]:
    """Every live process the release started: its session, its descendants, its marker."""
    found: dict[int, psutil.Process] = {}
    session = leader.pid if leader is not None else orphaned_session(handle)
    for process in psutil.process_iter():
        try:
            if not is_alive(process) or process.pid == os.getpid():
                continue
            in_session = session is not None and os.getsid(process.pid) == session
            if in_session or process.environ().get(MARKER_VARIABLE) == handle.marker:
                found[process.pid] = process
        except (psutil.Error, OSError):
            continue
    if leader is not None:
        found[leader.pid] = leader
        with contextlib.suppress(psutil.Error):
            for child in leader.children(recursive=True):
                found[child.pid] = child
    return list(found.values())


def orphaned_session(handle: ReleaseHandle) -> int | None:
    """The release's session id once its leader is gone (or a zombie), unless that pid now
    names another process. (The kernel never hands out a pid that is still some session's
    id, so while members of the old session live, the pid cannot lead a new one.)"""
    if handle.pid is None:
        return None
    try:
        holder = psutil.Process(handle.pid)
        same = handle.process_started_at is not None and (
            abs(holder.create_time() - handle.process_started_at) <= START_TIME_TOLERANCE
        )
    except psutil.NoSuchProcess:
        return handle.pid
    except psutil.Error:
        return None
    # The leader itself, not yet reaped; anything else holding the pid is a stranger.
    return handle.pid if same else None


def send(processes: Iterable[psutil.Process], signum: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)


def wait_for_exit(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Those of `processes` still alive after `seconds`. Polls rather than wait(): waiting
    would reap our own child before its reaper thread records the exit status."""
    deadline = time.monotonic() + seconds
    alive = [process for process in processes if is_alive(process)]
    while alive and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        alive = [process for process in alive if is_alive(process)]
    return alive


def is_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_process_with_marker(marker: str) -> psutil.Process | None:
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER_VARIABLE) == marker and is_alive(process):
                # The session leader is the release itself; its children share the marker.
                if process.pid == os.getsid(process.pid):
                    return process
        except (psutil.Error, OSError):
            continue
    return None


def signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
