"""Running the real `shipcord` command as a subprocess against a Discord double: the world
it runs in (double, targets file, environment, data folder) and helpers to drive it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from aiohttp import web
from temporalio.client import Client

from storage import Storage
from tests.discord_double import DiscordDouble
from tests.engine.harness import TARGETS, kill_release_processes
from workflows.release_operator import free_port

SHIPCORD_TOKEN = "shipcord-cli-test-token.secret-part"
ECHO_TOKEN = "echo-cli-test-token"


class HealthGate:
    """The health endpoint of the `slow` target: 503 until the test opens it."""

    def __init__(self) -> None:
        self.is_open = False
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> HealthGate:
        async def health(_: web.Request) -> web.Response:
            return web.Response(status=200 if self.is_open else 503)

        app = web.Application()
        app.router.add_get("/healthz", health)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def slow_target(gate: HealthGate) -> str:
    return (
        '\n[bots.slow]\ncommand = ["sleep", "600"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
        f'health_url = "http://127.0.0.1:{gate.port}/healthz"\n'
        "healthy_after = 0\nhealth_timeout = 200\n"
    )


@dataclass
class World:
    double: DiscordDouble
    env: dict[str, str]
    data_dir: Path
    guild_id: int
    channel_id: int
    owner_id: int
    shipcord_bot_id: int
    gate: HealthGate
    outputs: list[str] = field(default_factory=list)
    # Every shipcord process started in this world: a failed test must not leave one
    # running (its supervisor would start the embedded server again after clean-up).
    started: list[asyncio.subprocess.Process] = field(default_factory=list)


@asynccontextmanager
async def running_world(tmp_path: Path, extra_targets: str = "") -> AsyncIterator[World]:
    """A Discord double with shipcord's bot, an echo bot and a server; a targets file; the
    environment a `shipcord` subprocess runs with. Cleans up releases and servers after."""
    async with DiscordDouble(interaction_deadline=3.0) as double, HealthGate() as gate:
        shipcord = double.add_bot(token=SHIPCORD_TOKEN, username="shipcord")
        double.add_bot(token=ECHO_TOKEN, username="echo")
        owner = double.add_user("alice")
        guild = double.add_guild("Ops", owner_id=owner.id, channels=("deploys",))
        double.add_member(guild.id, shipcord.user_id)
        channel_id = guild.default_channel_id
        assert channel_id is not None
        targets = tmp_path / "targets.toml"
        targets.write_text(TARGETS + slow_target(gate) + extra_targets, encoding="utf-8")
        data_dir = tmp_path / "data"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "DISCORD_TOKEN": SHIPCORD_TOKEN,
            "DISCORD_API_BASE": double.api_base,
            "DISCORD_DEV_GUILD_ID": str(guild.id),
            "SHIPCORD_DATA_DIR": str(data_dir),
            "SHIPCORD_TARGETS_FILE": str(targets),
            "SHIPCORD_TEMPORAL_PORT": str(free_port()),
            "SHIPCORD_TEMPORAL_UI_PORT": str(free_port()),
            "SHIPCORD_LOG_FORMAT": "json",
            "SHIPCORD_LOG_LEVEL": "INFO",
            "SHIPCORD_PROGRESS_INTERVAL": "0.3",
            "SHIPCORD_TEST_ECHO_TOKEN": ECHO_TOKEN,
            "SHIPCORD_TEST_BAD_TOKEN": "nope",
        }
        world = World(
            double=double,
            env=env,
            data_dir=data_dir,
            guild_id=guild.id,
            channel_id=channel_id,
            owner_id=owner.id,
            shipcord_bot_id=shipcord.user_id,
            gate=gate,
        )
        try:
            yield world
        finally:
            for process in world.started:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            kill_release_processes(tmp_path)
            stop_embedded_servers(data_dir)


def stop_embedded_servers(data_dir: Path) -> None:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if "start-dev" in cmdline and any(str(data_dir) in part for part in cmdline):
            process.kill()


class Shipcord:
    """A `shipcord` subprocess whose output is collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process, everything: list[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._everything = everything
        self._readers = [
            asyncio.create_task(self._collect(process.stdout)),
            asyncio.create_task(self._collect(process.stderr)),
        ]

    async def _collect(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            self._everything.append(text)

    async def wait_for_line(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if text in line:
                    return line
            if self.process.returncode is not None or time.monotonic() > deadline:
                output = "\n".join(self.lines[-30:])
                raise AssertionError(f"no line containing {text!r}; output:\n{output}")
            await asyncio.sleep(0.05)

    async def finish(self, timeout: float = 60.0) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.gather(*self._readers)
        return code


async def start_shipcord(world: World, *args: str, env: dict[str, str] | None = None) -> Shipcord:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shipcord",
        *args,
        env=env if env is not None else world.env,
        cwd=str(world.data_dir.parent),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    world.started.append(process)
    return Shipcord(process, world.outputs)


async def wait_for_deployment_state(world: World, state: str, timeout: float = 60.0) -> str:
    """Poll shipcord's own SQLite file (WAL allows a second reader) for a closed deployment."""
    deadline = time.monotonic() + timeout
    async with await Storage.open(world.data_dir / "shipcord.db") as storage:
        while True:
            recent = await storage.list_deployments(limit=5)
            for deployment in recent:
                if deployment.state == state and not deployment.is_open:
                    return deployment.workflow_id
            if time.monotonic() > deadline:
                raise AssertionError(f"no deployment reached {state}: {recent}")
            await asyncio.sleep(0.1)


async def run_and_deploy(world: World, bot: str, version: str) -> Shipcord:
    """Start `shipcord run`, then `/deploy` through the double as the server's owner."""
    shipcord = await start_shipcord(world, "run")
    await shipcord.wait_for_line("Worker running")
    await world.double.wait_for_bot_ready(world.shipcord_bot_id, timeout=30)
    interaction = await world.double.dispatch_command(
        world.shipcord_bot_id,
        "deploy",
        {"bot": bot, "version": version},
        user=world.owner_id,
        guild=world.guild_id,
        channel=world.channel_id,
    )
    await world.double.wait_for_interaction_reply(interaction.id, timeout=15)
    return shipcord


async def run_to_end(world: World, *args: str, **env_changes: str | None) -> tuple[int, str]:
    env = dict(world.env)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    before = len(world.outputs)
    shipcord = await start_shipcord(world, *args, env=env)
    code = await shipcord.finish()
    return code, "\n".join(world.outputs[before:])


async def wait_for_open_deployment(world: World, bot: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    async with await Storage.open(world.data_dir / "shipcord.db") as storage:
        while True:
            for deployment in await storage.list_open_deployments():
                if deployment.bot_name == bot:
                    return deployment.workflow_id
            assert time.monotonic() < deadline, f"no open deployment of {bot}"
            await asyncio.sleep(0.1)


def on_shared_temporal(
    world: World, temporal_client: Client, task_queue: str, **settings: str
) -> dict[str, str]:
    """The world's environment for processes on the test's own Temporal server and task
    queue (no embedded server), with `settings` besides."""
    return dict(
        world.env,
        TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=task_queue,
        **settings,
    )
