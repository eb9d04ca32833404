"""The `process` runtime: each release is a detached local process.

Releases run in their own session, so they outlive a restart of shipcord. A release is
recognised by its pid together with the process start time (a recycled pid has another
start time), and by a marker in its environment, which lets a retried start adopt the
copy that an interrupted attempt already launched instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil

from workflows.runtimes.base import ReleaseHandle, ReleaseSpec, RuntimeError_

MARKER_VARIABLE = "SHIPCORD_RELEASE"
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
START_TIME_TOLERANCE = 0.05


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
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(spec.env, **{MARKER_VARIABLE: spec.marker})
        with open(spec.log_path, "ab") as log:
            log.write(f"--- shipcord: starting release {spec.release_number} ---\n".encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    spec.command,
                    cwd=spec.working_directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise RuntimeError_(
                    f"cannot start {spec.command[0]!r}: {error.strerror or error}"
                ) from None
        # Reap the child if it exits while we still are its parent (no zombies), and say
        # how it ended in its log.
        threading.Thread(
            target=reap, args=(child, spec.log_path), name=f"reap-{child.pid}", daemon=True
        ).start()
        try:
            return self._handle(spec, psutil.Process(child.pid))
        except psutil.NoSuchProcess:
            # Already gone: a handle without a pid is never running (its log says why).
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
        process = own_process(handle) or find_process_with_marker(handle.marker)
        if process is None:
            return
        signal_group(process.pid, signal.SIGTERM)
        if wait_for_exit(process, self._stop_grace):
            return
        signal_group(process.pid, signal.SIGKILL)
        if not wait_for_exit(process, KILL_WAIT_SECONDS):
            raise RuntimeError_(f"release process {process.pid} did not stop")

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
        tail = await asyncio.to_thread(log_tail, handle.log_path)
        return f"the process exited; last output: {tail}" if tail else "the process exited"


def reap(child: subprocess.Popen[bytes], log_path: Path) -> None:
    status = child.wait()
    ending = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
    with contextlib.suppress(OSError), open(log_path, "ab") as log:
        log.write(f"--- shipcord: release process ended ({ending}) ---\n".encode())


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


def wait_for_exit(process: psutil.Process, seconds: float) -> bool:
    """Poll rather than wait(): waiting would reap our own child before its reaper thread
    reads the exit status (which it writes to the release log)."""
    deadline = time.monotonic() + seconds
    while is_alive(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


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


def log_tail(path: str, limit: int = 300) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - limit))
            return log.read().decode("utf-8", "replace").strip().replace("\n", " | ")[-limit:]
    except OSError:
        return ""
