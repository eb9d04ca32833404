"""The processes the board and footprint benchmarks run, as a user runs them.

`shipcord run` is started as its own process (its CPU time and memory are then its own),
against the Discord double in another process (`python -m tests.discord_double`, which
models Discord's buckets and, here, does not announce them) and a Temporal dev server
whose metrics endpoint counts the calls shipcord makes (queries, describes, history
polls): the query load is measured at the server, from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from bench.common import TOKEN_ENV, temporal_child
from shipcord.embedded_temporal import SQLITE_PRAGMAS, find_temporal_binary
from tests.discord_double import DoubleProcess

T = TypeVar("T")
SHIPCORD_TOKEN = "bench-shipcord-token.secret-part"
TARGET_TOKEN = "bench-target-token"
ADMIN_ROLE = "deployers"
SHIPCORD = str(Path(sys.executable).with_name("shipcord"))
# The calls the board's load is made of, and the server's counter of each: its frontend's
# requests; history reads (long polls included) as the frontend's calls to its history
# service, since long polls are left out of the request counter.
OPERATIONS = {
    "QueryWorkflow": ("service_requests", "QueryWorkflow"),
    "DescribeWorkflowExecution": ("service_requests", "DescribeWorkflowExecution"),
    "GetWorkflowExecutionHistory": (
        "client_latency_count",
        "HistoryClientGetWorkflowExecutionHistory",
    ),
    "StartWorkflowExecution": ("service_requests", "StartWorkflowExecution"),
}
_METRIC = re.compile(r"^(?P<name>\w+)\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Temporal:
    client: Client
    address: str
    metrics_url: str
    process: psutil.Process

    async def calls(self) -> dict[str, float]:
        """How many calls of each operation the server's frontend has answered so far."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.metrics_url) as response,
        ):
            text = await response.text()
        wanted = {counter: name for name, counter in OPERATIONS.items()}
        counts = dict.fromkeys(OPERATIONS, 0.0)
        for line in text.splitlines():
            match = _METRIC.match(line)
            if match is None or 'service_name="frontend"' not in match["labels"]:
                continue
            operation = re.search(r'operation="([^"]+)"', match["labels"])
            name = wanted.get((match["name"], operation.group(1) if operation else ""))
            if name is not None:
                counts[name] += float(match["value"])
        return counts


@asynccontextmanager
async def temporal_server(work: Path) -> AsyncIterator[Temporal]:
    """The dev server as `shipcord run` starts it, with its metrics served."""
    metrics_port = free_port()
    extra = ["--metrics-port", str(metrics_port)]
    for pragma in SQLITE_PRAGMAS:
        extra += ["--sqlite-pragma", pragma]
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(find_temporal_binary()),
        dev_server_database_filename=str(work / "temporal.db"),
        dev_server_extra_args=extra,
    )
    try:
        yield Temporal(
            client=env.client,
            address=env.client.service_client.config.target_host,
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            process=temporal_child(),
        )
    finally:
        await env.shutdown()


def seed(*, users: int, channels: int) -> dict[str, Any]:
    """A server with `channels` channels and `users` members who may deploy."""
    names = [f"user-{n}" for n in range(users)]
    return {
        "users": [{"key": name, "username": name} for name in names],
        "bots": [
            {"key": "shipcord", "token": SHIPCORD_TOKEN, "username": "shipcord",
             "guilds": ["bench"]},
            {"key": "target", "token": TARGET_TOKEN, "username": "target"},
        ],
        "guilds": [
            {
                "key": "bench",
                "name": "Bench",
                "owner": names[0],
                "channels": [{"key": f"c{n}", "name": f"deploys-{n}"} for n in range(channels)],
                "roles": [{"key": ADMIN_ROLE, "name": ADMIN_ROLE}],
                "members": [{"user": name, "roles": [ADMIN_ROLE]} for name in names],
            }
        ],
    }  # fmt: skip


@asynccontextmanager
async def discord_double(
    *, users: int, channels: int, extra: tuple[str, ...] = ()
) -> AsyncIterator[DoubleProcess]:
    """The double with Discord's real buckets, not announced: only shipcord's pacing
    keeps it from answering 429."""
    args = ["--no-ratelimit-headers", "--interaction-deadline", "3", *extra]
    async with DoubleProcess(seed(users=users, channels=channels), args=args) as double:
        yield double


@dataclass
class Shipcord:
    """A running `shipcord` process, its output lines and its resource use."""

    process: asyncio.subprocess.Process
    started: float
    log: Path
    log_offset: int  # where this run's lines begin in the log file
    lines: list[str] = field(default_factory=list)
    _new_line: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def logged(self, marker: bytes) -> bool:
        """Whether this run wrote `marker` to its log."""
        with self.log.open("rb") as log:
            log.seek(self.log_offset)
            return marker in log.read()

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    async def read_lines(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._new_line.set()
        await self.process.wait()
        self._new_line.set()  # its end is news too

    async def _said(self, text: str) -> bool:
        """Whether this run printed `text`, or logged it (in JSON mode, shipcord's
        announcements are log events)."""
        if any(text in line for line in self.lines):
            return True
        return await asyncio.to_thread(self.logged, text.encode())

    async def wait_for_line(self, text: str, timeout: float = 120.0) -> float:
        """Seconds from the start until a line containing `text` was printed or logged."""
        deadline = time.monotonic() + timeout
        while not await self._said(text):
            if self.process.returncode is not None:
                raise RuntimeError(f"shipcord exited ({self.process.returncode}): {self.lines}")
            self._new_line.clear()
            # Its log is another process's file: looked at again at least every 0.1 s.
            wait = min(0.1, max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_line.wait(), wait)
            if time.monotonic() > deadline:
                raise TimeoutError(f"shipcord never printed {text!r}: {self.lines}")
        return time.monotonic() - self.started

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 60)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        return self.process.returncode or 0


def shipcord_env(
    work: Path, double: DoubleProcess, *, temporal: str | None, task_queue: str
) -> dict[str, str]:
    guild_id = double.ids["guilds"]["bench"]["id"]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "DISCORD_TOKEN": SHIPCORD_TOKEN,
        "DISCORD_API_BASE": double.api_base,
        "DISCORD_DEV_GUILD_ID": str(guild_id),
        "SHIPCORD_ADMIN_ROLE": ADMIN_ROLE,
        "SHIPCORD_DATA_DIR": str(work / "data"),
        "SHIPCORD_TARGETS_FILE": str(work / "targets.toml"),
        "SHIPCORD_LOG_FORMAT": "json",
        "SHIPCORD_LOG_LEVEL": "INFO",
        "TEMPORAL_TASK_QUEUE": task_queue,
        TOKEN_ENV: TARGET_TOKEN,
    }
    if temporal is not None:
        env["TEMPORAL_ADDRESS"] = temporal
    else:
        env["SHIPCORD_TEMPORAL_PORT"] = str(free_port())
        env["SHIPCORD_TEMPORAL_UI_PORT"] = str(free_port())
    return env


@asynccontextmanager
async def shipcord_run(
    work: Path, env: dict[str, str], *, tree: Path | None = None
) -> AsyncIterator[Shipcord]:
    """`shipcord run` with `env` (that of the checkout `tree`, when given); its log (JSON
    lines) goes to a file in `work`."""
    path = work / "shipcord.log"
    log = path.open("ab")
    offset = log.tell()
    command = [SHIPCORD, "run"]
    if tree is not None:
        command = [sys.executable, "-m", "shipcord", "run"]
        env = {**env, "PYTHONPATH": str(tree)}
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        cwd=str(tree or work),
    )
    shipcord = Shipcord(process=process, started=time.monotonic(), log=path, log_offset=offset)
    shipcord._reader = asyncio.create_task(shipcord.read_lines())
    try:
        yield shipcord
    finally:
        await shipcord.stop()
        log.close()


async def ready(shipcord: Shipcord, double: DoubleProcess, timeout: float = 120.0) -> float:
    """Seconds from start until the worker runs and the bot is ready on Discord (which
    discord.py says once the server's guilds have arrived)."""
    await shipcord.wait_for_line("Worker running", timeout)
    await double.control.wait("bot_ready", bot="shipcord", timeout=timeout)
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(shipcord.logged, b'"discord_ready"'):
        if time.monotonic() > deadline:
            raise TimeoutError("shipcord never logged discord_ready")
        await asyncio.sleep(0.05)  # another process's log file: a poll with a deadline
    return time.monotonic() - shipcord.started


async def once_started(call: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    """`call()` on a workflow that may not exist yet: /deploy answers as soon as the
    deployment is accepted, while Temporal is still starting it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)  # another system's state: a poll with a deadline
