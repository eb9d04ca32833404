"""The real `shipcord` command as a subprocess: run, SIGTERM, restart; check."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
import temporalio.activity
from temporalio.client import Client
from temporalio.worker import Worker

from storage import Storage
from tests.cli_world import (
    ECHO_TOKEN,
    SHIPCORD_TOKEN,
    World,
    on_shared_temporal,
    run_and_deploy,
    run_to_end,
    running_world,
    start_shipcord,
    wait_for_deployment_state,
    wait_for_open_deployment,
)
from tests.ports import free_port
from tests.test_environment import pipe_can_hold
from workflows.hosts import host_task_queue
from workflows.models import DeploymentResult


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_world(tmp_path) as started:
        yield started


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
    assert "Traceback" not in output, output


async def test_secrets_too_large_to_hand_over_are_one_clear_line(world: World) -> None:
    huge = {f"HUGE_{n}_SECRET": "s" * 120_000 for n in range(10)}
    if pipe_can_hold(sum(len(value) for value in huge.values()) + 10_000):
        pytest.skip("this kernel lets a pipe hold them all: they are handed over")
    exit_code, output = await run_to_end(world, "worker", **huge)
    assert exit_code == 2, output[-2000:]
    assert "do not fit the pipe that hands them over" in output and "HUGE_" in output
    assert "Traceback" not in output and "s" * 20 not in output, output[-2000:]


async def test_port_in_use_is_one_clear_line(world: World) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        exit_code, output = await run_to_end(world, "worker", SHIPCORD_TEMPORAL_PORT=str(port))
    assert exit_code != 0
    assert str(port) in output and "in use" in output
    assert "Traceback" not in output, output


async def test_the_sdk_metrics_port_in_use_is_one_clear_line(world: World) -> None:
    metrics_port = free_port(consecutive=2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", metrics_port + 1))  # the Temporal SDK's exporter's port
        holder.listen()
        exit_code, output = await run_to_end(
            world, "worker", SHIPCORD_METRICS_PORT=str(metrics_port)
        )
    assert exit_code != 0
    assert f"{metrics_port + 1}: the port is in use" in output, output
    assert "SHIPCORD_METRICS_PORT" in output and "Traceback" not in output, output


async def test_sync_commands_registers_the_commands_globally(world: World) -> None:
    exit_code, output = await run_to_end(world, "sync-commands")
    assert exit_code == 0, output
    names = {command["name"] for command in world.double.commands(world.shipcord_bot_id)}
    assert names == {
        "deploy",
        "status",
        "pause",
        "resume",
        "cancel",
        "history",
        "rollback",
        "logs",
        "promote",
    }


async def test_killed_mid_deployment_it_carries_on_after_a_restart(world: World) -> None:
    shipcord = await run_and_deploy(world, "slow", "1.0.0")
    progress = await world.double.wait_for_message(
        world.channel_id,
        lambda m: "**Running health check** —" in m.text() and not m.ephemeral,
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
    env = on_shared_temporal(
        world,
        temporal_client,
        task_queue,
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


async def test_version(world: World) -> None:
    code, output = await run_to_end(world, "--version")
    assert code == 0 and output.strip() == f"shipcord {importlib.metadata.version('shipcord')}"


def embedded_server_pid(world: World) -> int:
    record = json.loads((world.data_dir / "temporal-server.pid").read_text())
    return int(record["pid"])


async def test_the_embedded_server_killed_mid_deployment_comes_back_and_it_finishes(
    world: World,
) -> None:
    metrics_port = free_port(consecutive=2)
    world.env["SHIPCORD_METRICS_PORT"] = str(metrics_port)
    shipcord = await run_and_deploy(world, "slow", "1.0.0")
    await world.double.wait_for_message(
        world.channel_id,
        lambda m: "Running health check" in m.text() and not m.ephemeral,
        timeout=30,
    )
    first = embedded_server_pid(world)
    psutil.Process(first).kill()

    restarted = await shipcord.wait_for_line("embedded_temporal_restarted", timeout=90)
    assert str(first) not in restarted and embedded_server_pid(world) != first
    world.gate.is_open = True
    await wait_for_deployment_state(world, "succeeded", timeout=120)
    metrics = await asyncio.to_thread(fetch_text, f"http://127.0.0.1:{metrics_port}/metrics")
    assert "shipcord_embedded_temporal_restarts_total 1.0" in metrics
    shipcord.process.send_signal(signal.SIGTERM)
    assert await shipcord.finish() == 0


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


async def test_shipcord_exits_non_zero_when_the_embedded_server_cannot_come_back(
    world: World,
) -> None:
    shipcord = await start_shipcord(world, "worker")
    await shipcord.wait_for_line("Worker running")
    # A database the server cannot open: it fails at once on every start from now on.
    for path in world.data_dir.glob("temporal.db*"):
        path.write_bytes(os.urandom(8192))
    psutil.Process(embedded_server_pid(world)).kill()

    assert await shipcord.finish(timeout=120) == 1
    output = "\n".join(shipcord.lines)
    assert "the embedded Temporal server cannot be restarted" in output
    assert "file is not a database" in output
    assert "Traceback" not in output, output


async def test_json_mode_prints_json_lines_only(world: World) -> None:
    shipcord = await start_shipcord(world, "worker")
    await shipcord.wait_for_line("Worker running")
    shipcord.process.send_signal(signal.SIGTERM)
    assert await shipcord.finish() == 0
    events = [json.loads(line) for line in shipcord.lines]
    assert all(isinstance(event, dict) for event in events)
    said = [event["event"] for event in events]
    assert any(line.startswith("Embedded Temporal server at") for line in said)
    assert "Stopped" in said


async def test_check_lists_every_problem_on_one_line_each(world: World, tmp_path: Path) -> None:
    targets = tmp_path / "broken-targets.toml"
    targets.write_text(
        '[bots.echo]\ncommand = ["{python}", "-m", "examples.echo_bot"]\n'
        'token_env = "SHIPCORD_TEST_NO_SUCH_TOKEN"\ncommands = "nowhere/commands.json"\n'
        '[bots.ghost]\ncommand = ["no-such-program-anywhere"]\n'
        f'token_file = "{tmp_path / "missing.token"}"\n'
    )
    code, output = await run_to_end(
        world,
        "check",
        "--no-start",
        SHIPCORD_TARGETS_FILE=str(targets),
        SHIPCORD_LOG_FORMAT="console",
    )
    problems = [line for line in output.splitlines() if line.startswith("shipcord: ")]
    assert problems == [
        f"shipcord: bots.echo.commands: cannot read {tmp_path / 'nowhere' / 'commands.json'}: "
        "No such file or directory",
        "shipcord: bots.echo: no token in the variable SHIPCORD_TEST_NO_SUCH_TOKEN "
        "(environment or .env)",
        f"shipcord: bots.ghost: no token in the file {tmp_path / 'missing.token'}",
        "shipcord: bots.ghost.command: 'no-such-program-anywhere' is not found (PATH or a path)",
        "shipcord: 4 problems found",
    ], output
    assert code == 2


def with_echo_roles(targets: Path, folder: Path) -> Path:
    """The targets file, its echo bot with roles by name and by id."""
    text = targets.read_text(encoding="utf-8")
    roles = (
        '[bots.echo]\ndeploy_roles = ["ops", "345678901234567890"]\n'
        'approval = { role = "approvers", timeout = "30m" }\n'
    )
    assert "[bots.echo]\n" in text
    with_roles = folder / "roles-targets.toml"
    with_roles.write_text(text.replace("[bots.echo]\n", roles, 1), encoding="utf-8")
    return with_roles


async def test_check_warns_of_each_role_given_by_name(world: World, tmp_path: Path) -> None:
    """A role name is claimable: check says so for each, and how to give the id; the exit
    status is as it was."""
    with_roles = with_echo_roles(Path(world.env["SHIPCORD_TARGETS_FILE"]), tmp_path)
    code, output = await run_to_end(
        world,
        "check",
        "--no-start",
        SHIPCORD_TARGETS_FILE=str(with_roles),
        SHIPCORD_ADMIN_ROLE="Deployers",
        SHIPCORD_LOG_FORMAT="console",
    )
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning: ")]
    assert [line.split(" is given by name: ")[0] for line in warnings] == [
        "warning: SHIPCORD_ADMIN_ROLE: the role 'Deployers'",
        "warning: bots.echo.deploy_roles: the role 'ops'",
        "warning: bots.echo.approval.role: the role 'approvers'",
    ], output
    assert all("Copy Role ID" in line for line in warnings)
    assert "  echo: ok" in output and "problem" not in output


async def test_tokens_from_files_and_dot_env(world: World, tmp_path: Path) -> None:
    """shipcord's own token from DISCORD_TOKEN_FILE, a target's from the .env beside it."""
    token_file = tmp_path / "discord.token"
    token_file.write_text(SHIPCORD_TOKEN + "\n")
    (world.data_dir.parent / ".env").write_text(f"SHIPCORD_TEST_ECHO_TOKEN={ECHO_TOKEN}\n")
    code, output = await run_to_end(
        world,
        "check",
        "--no-start",
        DISCORD_TOKEN=None,
        DISCORD_TOKEN_FILE=str(token_file),
        SHIPCORD_TEST_ECHO_TOKEN=None,
        SHIPCORD_LOG_FORMAT="console",
    )
    assert code == 0, output
    assert "  echo: ok" in output and "Discord token: ok" in output
    assert SHIPCORD_TOKEN not in output and ECHO_TOKEN not in output
    both, output = await run_to_end(world, "check", DISCORD_TOKEN_FILE=str(token_file))
    assert both == 2 and "DISCORD_TOKEN and DISCORD_TOKEN_FILE are both set" in output


async def test_a_button_right_after_a_crash_and_restart_answers_within_3_s(world: World) -> None:
    """After a kill -9, Temporal still routes the deployment's tasks to the dead worker for
    a while: the controls must not wait for it (signals need no worker), and say which."""
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
    # The workflow's own answer, or (while its tasks still go to the dead worker) the signal.
    assert answer.startswith(("Paused", "Pausing")), answer
    again.process.send_signal(signal.SIGTERM)
    assert await again.finish() == 0


def two_host_targets(folder: Path) -> Path:
    targets = folder / "hosts-targets.toml"
    targets.write_text(
        '[bots.on-alpha]\ncommand = ["sleep", "600"]\nhost = "alpha"\n'
        'token_env = "SHIPCORD_TEST_ALPHA_TOKEN"\n'
        '[bots.on-beta]\ncommand = ["sleep", "600"]\nhost = "beta"\n'
        'token_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
        '[bots.anywhere]\ncommand = ["sleep", "600"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
    )
    return targets


@temporalio.activity.defn(name="shipcord_test_noop")
async def noop() -> None:
    return None


async def test_check_checks_what_its_role_needs_and_lists_the_hosts(
    world: World, tmp_path: Path, temporal_client: Client, task_queue: str
) -> None:
    targets = two_host_targets(tmp_path)
    base = dict(
        SHIPCORD_TARGETS_FILE=str(targets),
        SHIPCORD_LOG_FORMAT="console",
        TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=task_queue,
        SHIPCORD_DEFAULT_HOST="beta",
    )
    no_discord = dict(base, DISCORD_TOKEN=None, DISCORD_DEV_GUILD_ID=None, SHIPCORD_GUILD_IDS=None)

    # A worker needs no Discord token nor servers; only the targets of its host, with theirs.
    code, output = await run_to_end(
        world, "check", "--role", "worker", "--host", "beta", **no_discord
    )
    assert code == 0, output
    assert "  on-beta: ok" in output and "  anywhere: ok" in output, output
    assert "on-alpha: ok" not in output and "SHIPCORD_TEST_ALPHA_TOKEN" not in output, output
    assert "DISCORD_TOKEN" not in output and "Discord server" not in output, output
    code, output = await run_to_end(
        world, "check", "--role", "worker", "--host", "alpha", **no_discord
    )
    assert code == 2, output
    assert "bots.on-alpha: no token in the variable SHIPCORD_TEST_ALPHA_TOKEN" in output, output
    assert "on-beta" not in output.split("Temporal at")[0], output

    # The front end needs the Discord token and a server, not the bots' tokens.
    code, output = await run_to_end(world, "check", "--role", "bot", **base)
    assert code == 0, output
    assert "SHIPCORD_TEST_ALPHA_TOKEN" not in output and "Discord token: ok" in output, output
    code, output = await run_to_end(world, "check", "--role", "bot", **no_discord)
    assert code == 2 and "DISCORD_TOKEN is not set" in output, output
    assert "set SHIPCORD_GUILD_IDS to your server" in output, output

    # `run` checks everything, as before.
    code, output = await run_to_end(world, "check", **base)
    assert code == 2 and "SHIPCORD_TEST_ALPHA_TOKEN" in output, output

    # With Temporal reachable: the hosts with a worker now, and each target without one.
    async with Worker(
        temporal_client, task_queue=host_task_queue(task_queue, "beta"), activities=[noop]
    ):
        deadline = time.monotonic() + 30
        while True:
            code, output = await run_to_end(world, "check", "--role", "bot", **base)
            if "hosts with a running worker: beta" in output:
                break
            assert time.monotonic() < deadline, output
        assert code == 0, output
        assert "  on-alpha: host alpha has no running worker" in output, output
        assert "on-beta: host" not in output and "anywhere: host" not in output, output


NOBODY = 65534


def as_nobody() -> list[str] | None:
    """The prefix that runs a command as uid nobody, or None where that cannot be done."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        return None
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def unreachable_for(prefix: list[str]) -> str | None:
    """Why that uid cannot run shipcord from this checkout (a clone in a folder only root
    may enter), or None when it can."""
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import shipcord"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": os.environ["PATH"]},
    )
    if probe.returncode == 0:
        return None
    lines = (probe.stderr or probe.stdout).strip().splitlines() or ["no output"]
    return lines[-1]


def unreadable_secret_folder() -> tuple[Path, Path, Path]:
    """A folder nobody can reach (pytest's own is root's only) with a secret file it cannot
    read, a targets file whose bot uses that secret, and a data folder it can write."""
    folder = Path(tempfile.mkdtemp(prefix="shipcord-secrets-"))
    folder.chmod(0o755)
    secret = folder / "discord.token"
    secret.write_text(SHIPCORD_TOKEN)
    secret.chmod(0o000)
    (folder / "data").mkdir()
    (folder / "data").chmod(0o777)
    targets = folder / "targets.toml"
    targets.write_text(f'[bots.echo]\ncommand = ["sleep", "600"]\ntoken_file = "{secret}"\n')
    return folder, secret, targets


async def test_an_unreadable_secret_file_says_which_file_and_which_uid(tmp_path: Path) -> None:
    """A root-owned secret that shipcord's uid cannot read (the image runs as 10001): the
    message names the file and the uid that must read it, not a bare "Permission denied".
    As root every file is readable, so shipcord runs as nobody here."""
    prefix = as_nobody()
    if prefix is None:
        pytest.skip("needs root and setpriv, to run shipcord as a uid that cannot read a file")
    if (why := unreachable_for(prefix)) is not None:
        pytest.skip(f"uid {NOBODY} cannot run shipcord from this checkout: {why}")
    folder, secret, targets = unreadable_secret_folder()
    try:
        env = {
            "PATH": os.environ["PATH"],
            "SHIPCORD_TARGETS_FILE": str(targets),
            "SHIPCORD_DATA_DIR": str(folder / "data"),
            "SHIPCORD_LOG_FORMAT": "console",
        }

        async def shipcord(*args: str, **more: str) -> tuple[int, str]:
            process = await asyncio.create_subprocess_exec(
                *prefix,
                sys.executable,
                "-m",
                "shipcord",
                *args,
                env=dict(env, **more),
                cwd=str(folder),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(process.communicate(), 60)
            return await process.wait(), out.decode()

        said = f"uid {NOBODY} (gid {NOBODY}), which must be able to read it"
        code, output = await shipcord("check", "--no-start", DISCORD_TOKEN_FILE=str(secret))
        assert code == 2, output
        assert f"DISCORD_TOKEN_FILE: cannot read {secret}: permission denied" in output, output
        assert said in output and "mode 0000" in output, output

        # A target's token file: the worker's check says the same of it.
        code, output = await shipcord("check", "--no-start", "--role", "worker")
        assert code == 2, output
        assert f"bots.echo: cannot read {secret}: permission denied" in output, output
        assert said in output, output
    finally:
        shutil.rmtree(folder, ignore_errors=True)
