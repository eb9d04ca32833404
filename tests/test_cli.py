"""The real `shipcord` command as a subprocess: run, SIGTERM, restart; check."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from aiohttp import web
from temporalio.client import Client

from storage import Storage
from tests.discord_double import DiscordDouble
from tests.engine.harness import TARGETS, kill_release_processes
from workflows import DeploymentResult
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


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with DiscordDouble(interaction_deadline=3.0) as double, HealthGate() as gate:
        shipcord = double.add_bot(token=SHIPCORD_TOKEN, username="shipcord")
        double.add_bot(token=ECHO_TOKEN, username="echo")
        owner = double.add_user("alice")
        guild = double.add_guild("Ops", owner_id=owner.id, channels=("deploys",))
        double.add_member(guild.id, shipcord.user_id)
        channel_id = guild.default_channel_id
        assert channel_id is not None
        targets = tmp_path / "targets.toml"
        targets.write_text(TARGETS + slow_target(gate), encoding="utf-8")
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
        yield World(
            double=double,
            env=env,
            data_dir=data_dir,
            guild_id=guild.id,
            channel_id=channel_id,
            owner_id=owner.id,
            shipcord_bot_id=shipcord.user_id,
            gate=gate,
        )
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


async def test_run_deploy_sigterm_and_restart_reuses_data(world: World) -> None:
    shipcord = await run_and_deploy(world, "echo", "1.0.0")
    ui_line = await shipcord.wait_for_line("Temporal Web UI")
    assert world.env["SHIPCORD_TEMPORAL_UI_PORT"] in ui_line
    workflow_id = await wait_for_deployment_state(world, "succeeded")
    async with await Storage.open(world.data_dir / "shipcord.db") as storage:
        deployment = await storage.get_deployment(workflow_id)
    assert deployment is not None and deployment.message_id is not None
    await world.double.wait_for(
        lambda: "100" in world.double.message(deployment.message_id).text(),
        timeout=15,
        description="the progress message to reach 100 %",
    )

    shipcord.process.send_signal(signal.SIGTERM)
    assert await shipcord.finish() == 0
    assert any("Stopped" in line for line in world.outputs)

    # Started again on the same data directory: the same Temporal history and database.
    again = await start_shipcord(world, "run")
    await again.wait_for_line("Worker running")
    client = await Client.connect(f"127.0.0.1:{world.env['SHIPCORD_TEMPORAL_PORT']}")
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.status is not None and description.status.name == "COMPLETED"

    # A crash leaves the embedded server running; the next start adopts it.
    again.process.kill()
    await again.finish()
    third = await start_shipcord(world, "worker")
    await third.wait_for_line("reused the server already running")
    third.process.send_signal(signal.SIGINT)
    assert await third.finish() == 0

    output = "\n".join(world.outputs)
    assert SHIPCORD_TOKEN not in output and ECHO_TOKEN not in output
    json_lines = [line for line in world.outputs if line.startswith("{")]
    assert json_lines and all(isinstance(json.loads(line), dict) for line in json_lines)


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


async def test_check_passes_and_prints_the_invite_url(
    world: World, temporal_client: Client
) -> None:
    address = temporal_client.service_client.config.target_host
    code, output = await run_to_end(world, "check", TEMPORAL_ADDRESS=address)
    assert code == 0, output
    assert f"client_id={world.shipcord_bot_id}" in output
    assert "scope=bot+applications.commands" in output
    assert SHIPCORD_TOKEN not in output


@pytest.mark.parametrize(
    ("args", "env_changes", "code", "expected"),
    [
        (("check",), {"DISCORD_TOKEN": None}, 2, "DISCORD_TOKEN is not set"),
        (("run",), {"DISCORD_TOKEN": None}, 2, "DISCORD_TOKEN is not set"),
        (("check",), {"DISCORD_TOKEN": "not-a-known-token"}, 2, "rejected DISCORD_TOKEN"),
        (("check",), {"SHIPCORD_TARGETS_FILE": "/nonexistent/t.toml"}, 2, "/nonexistent/t.toml"),
        (("check",), {"TEMPORAL_ADDRESS": "127.0.0.1:1"}, 1, "cannot reach Temporal"),
        (("check",), {"SHIPCORD_LOG_FORMAT": "fancy"}, 2, "SHIPCORD_LOG_FORMAT"),
        (("check",), {"DISCORD_DEV_GUILD_ID": None}, 2, "set SHIPCORD_GUILD_IDS to your server"),
        (("worker",), {"TEMPORAL_ADDRESS": "not an address"}, 2, "TEMPORAL_ADDRESS"),
    ],
)
async def test_bad_settings_give_one_clear_line(
    world: World,
    args: tuple[str, ...],
    env_changes: dict[str, str | None],
    code: int,
    expected: str,
) -> None:
    exit_code, output = await run_to_end(world, *args, **env_changes)
    assert exit_code == code, output
    assert expected in output
    assert "Traceback" not in output


async def test_port_in_use_is_one_clear_line(world: World) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        exit_code, output = await run_to_end(world, "worker", SHIPCORD_TEMPORAL_PORT=str(port))
    assert exit_code != 0
    assert str(port) in output and "in use" in output
    assert "Traceback" not in output


async def test_sync_commands_registers_the_commands_globally(world: World) -> None:
    exit_code, output = await run_to_end(world, "sync-commands")
    assert exit_code == 0, output
    names = {command["name"] for command in world.double.commands(world.shipcord_bot_id)}
    assert names == {"deploy", "status", "pause", "resume", "cancel"}


async def test_killed_mid_deployment_it_carries_on_after_a_restart(world: World) -> None:
    shipcord = await run_and_deploy(world, "slow", "1.0.0")
    progress = await world.double.wait_for_message(
        world.channel_id,
        lambda m: "Running health check" in m.text() and not m.ephemeral,
        timeout=30,
    )

    shipcord.process.kill()  # a crash: no clean-up at all
    await shipcord.finish()
    world.gate.is_open = True
    again = await start_shipcord(world, "run")
    await again.wait_for_line("reused the server already running")
    await wait_for_deployment_state(world, "succeeded", timeout=90)
    await world.double.wait_for(
        lambda: "State: succeeded" in world.double.message(progress.id).text(),
        timeout=30,
        description="the same progress message to reach its final form",
    )
    progress_messages = [
        m
        for m in world.double.messages(world.channel_id)
        if "slow" in m.text() and not m.ephemeral and m.message_reference is None
    ]
    assert [m.id for m in progress_messages] == [progress.id]
    again.process.send_signal(signal.SIGTERM)
    assert await again.finish() == 0


async def test_split_bot_and_two_workers_survive_losing_a_worker(
    world: World, temporal_client: Client, task_queue: str
) -> None:
    """Scaling out: one front end, two workers on one Temporal; one worker dies mid-step."""
    env = dict(
        world.env,
        TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=task_queue,
    )
    workers = [await start_shipcord(world, "worker", env=env) for _ in range(2)]
    for worker in workers:
        await worker.wait_for_line("Worker running")
    front = await start_shipcord(world, "bot", env=env)
    await world.double.wait_for_bot_ready(world.shipcord_bot_id, timeout=30)
    interaction = await world.double.dispatch_command(
        world.shipcord_bot_id,
        "deploy",
        {"bot": "slow", "version": "2.0.0"},
        user=world.owner_id,
        guild=world.guild_id,
        channel=world.channel_id,
    )
    await world.double.wait_for_interaction_reply(interaction.id, timeout=15)
    deployment = await wait_for_open_deployment(world, "slow")
    handle = temporal_client.get_workflow_handle(deployment, result_type=DeploymentResult)

    async def health_check_worker() -> str | None:
        pending = (await handle.describe()).raw_description.pending_activities
        for activity in pending:
            if activity.activity_type.name == "run_health_check" and activity.last_worker_identity:
                return str(activity.last_worker_identity)
        return None

    deadline = time.monotonic() + 30
    while (identity := await health_check_worker()) is None:
        assert time.monotonic() < deadline, "the health check never started"
        await asyncio.sleep(0.1)
    [busy] = [w for w in workers if identity.startswith(f"{w.process.pid}@")]
    busy.process.kill()
    await busy.finish()
    world.gate.is_open = True

    result = await handle.result()
    assert result.success, result.error
    survivor = next(w for w in workers if w is not busy)
    for process in (survivor, front):
        process.process.send_signal(signal.SIGTERM)
        assert await process.finish() == 0


async def wait_for_open_deployment(world: World, bot: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    async with await Storage.open(world.data_dir / "shipcord.db") as storage:
        while True:
            for deployment in await storage.list_open_deployments():
                if deployment.bot_name == bot:
                    return deployment.workflow_id
            assert time.monotonic() < deadline, f"no open deployment of {bot}"
            await asyncio.sleep(0.1)


async def test_a_button_right_after_a_crash_and_restart_answers_within_3_s(world: World) -> None:
    """After a kill -9, Temporal still routes the deployment's queries to the dead worker
    for a while: the controls must not wait for it (signals need no worker)."""
    shipcord = await run_and_deploy(world, "slow", "1.0.0")
    progress = await world.double.wait_for_message(
        world.channel_id,
        lambda m: "Running health check" in m.text() and not m.ephemeral and bool(m.components),
        timeout=30,
    )
    shipcord.process.kill()
    await shipcord.finish()
    again = await start_shipcord(world, "run")
    await again.wait_for_line("Discord bot connecting")
    await world.double.wait_for(
        lambda: world.double.bot_connected(world.shipcord_bot_id), 30, "the new gateway session"
    )
    pause = next(
        component["custom_id"]
        for row in progress.components
        for component in row["components"]
        if component["custom_id"].startswith("shipcord:pause:")
    )
    click = await world.double.dispatch_component(
        world.shipcord_bot_id, progress.id, pause, user=world.owner_id
    )
    await world.double.wait_for_interaction_reply(click.id, timeout=3.0)
    answer = world.double.message(world.double.interaction(click.id).reply_message_id).text()
    assert answer.startswith("Paused"), answer
    again.process.send_signal(signal.SIGTERM)
    assert await again.finish() == 0
