"""No secret anywhere it could leak: the real `shipcord run`, at DEBUG level, in both log
formats, through a successful deployment, a failed one whose release prints its token and
its whole environment, and that failure's rollback.

Every token — shipcord's own, each target's, and the interaction tokens Discord hands out
— is looked for in: the JSON and console logs, shipcord.db and its WAL, temporal.db, every
workflow's history as `temporal workflow show` prints it, every message and DM in the
Discord double, and both metrics endpoints. Also asserted here: the data folder's file
modes, that every port shipcord and its embedded server listen on is on loopback, and that
shipcord's own /proc/<pid>/environ (readable by a release of the same user) holds none of
the tokens it was started with.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.cli_world import (
    ECHO_TOKEN,
    SHIPCORD_TOKEN,
    World,
    run_and_deploy,
    running_world,
    start_shipcord,
    wait_for_deployment_state,
)
from tests.leaks import hits, shown_plaintext
from tests.ports import NEVER_HEALTHY, free_port

LEAKY_TOKEN = "leaky-release-token-7c6b5a4938271605"
LEAKY_TARGET = """
[bots.leaky]
command = ["{python}", "-c", 'import os, sys; print("fatal: login refused for token", os.environ["DISCORD_TOKEN"]); [print(name + "=" + value) for name, value in os.environ.items()]; sys.exit(3)']
token_env = "SHIPCORD_TEST_LEAKY_TOKEN"
healthy_after = 1
"""  # noqa: E501
LEAKY_TARGET += NEVER_HEALTHY


def temporal_cli() -> str:
    import sys

    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal") or "temporal"


def workflow_show(world: World, workflow_id: str) -> str:
    shown = subprocess.run(
        [
            temporal_cli(), "workflow", "show", "--workflow-id", workflow_id,
            "--address", f"127.0.0.1:{world.env['SHIPCORD_TEMPORAL_PORT']}",
            "--output", "json",
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return shown.stdout


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def listening_addresses(pid: int) -> set[str]:
    process = psutil.Process(pid)
    return {
        connection.laddr.ip
        for connection in process.net_connections("inet")
        if connection.status == psutil.CONN_LISTEN
    }


def data_files(data_dir: Path) -> dict[str, int]:
    return {
        str(path.relative_to(data_dir)): path.stat().st_mode & 0o777
        for path in data_dir.rglob("*")
        if path.name != "temporal-server.lock"
    }


@pytest.fixture
async def world(tmp_path: Path) -> object:
    async with running_world(tmp_path, extra_targets=LEAKY_TARGET) as started:
        started.double.add_bot(token=LEAKY_TOKEN, username="leaky")
        started.env.update(
            SHIPCORD_TEST_LEAKY_TOKEN=LEAKY_TOKEN,
            SHIPCORD_LOG_LEVEL="DEBUG",
            SHIPCORD_METRICS_PORT=str(free_port(consecutive=2)),
        )
        yield started


@pytest.mark.timeout(600)
async def test_no_token_anywhere_after_success_failure_rollback_at_debug(world: World) -> None:
    # -- JSON logs: a successful deployment, then a leaking one that fails and rolls back.
    shipcord = await run_and_deploy(world, "echo", "1.0.0")
    succeeded = await wait_for_deployment_state(world, "succeeded")
    interaction = await world.double.dispatch_command(
        world.shipcord_bot_id,
        "deploy",
        {"bot": "leaky", "version": "1.0.0"},
        user=world.owner_id,
        guild=world.guild_id,
        channel=world.channel_id,
    )
    await world.double.wait_for_interaction_reply(interaction.id, timeout=15)
    failed = await wait_for_deployment_state(world, "failed", timeout=90)
    notice = await world.double.wait_for_message(
        world.channel_id,
        lambda m: failed in m.content and m.message_reference is not None,
        timeout=30,
    )
    assert "exited with status 3 after" in notice.text()
    await world.double.wait_for_message(dm_user=world.owner_id, timeout=30)

    # While it runs: its environment, its ports, its metrics.
    pid = shipcord.process.pid
    environ = await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)
    assert hits([SHIPCORD_TOKEN, ECHO_TOKEN, LEAKY_TOKEN], environ) == []
    server_pid = int(
        (world.data_dir / "temporal-server.pid").read_text().split('"pid": ')[1].split(",")[0]
    )
    assert listening_addresses(pid) == {"127.0.0.1"}
    assert listening_addresses(server_pid) == {"127.0.0.1"}
    metrics_port = int(world.env["SHIPCORD_METRICS_PORT"])
    metrics = [
        await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
        for port in (metrics_port, metrics_port + 1)
    ]
    assert "shipcord_deployments_started_total 2.0" in metrics[0]
    # The SDK's own metrics follow Prometheus naming: counters _total, durations seconds.
    assert "temporal_request_total" in metrics[1] or "_total{" in metrics[1]
    assert "_seconds_bucket" in metrics[1]
    histories = [
        shown_plaintext(await asyncio.to_thread(workflow_show, world, workflow_id))
        for workflow_id in (succeeded, failed)
    ]
    # Decoded: the input and the results are there as text, the error too.
    assert '"botName":"leaky"' in histories[1].replace(" ", "")
    assert "Release 1 of leaky is not running" in histories[1]
    shipcord.process.send_signal(signal.SIGTERM)
    assert await shipcord.finish() == 0

    # -- console logs, same DEBUG level: one more deployment.
    world.env["SHIPCORD_LOG_FORMAT"] = "console"
    again = await start_shipcord(world, "run")
    await again.wait_for_line("Worker running")
    await world.double.wait_for_bot_ready(world.shipcord_bot_id, timeout=30)
    interaction = await world.double.dispatch_command(
        world.shipcord_bot_id,
        "deploy",
        {"bot": "echo", "version": "2.0.0"},
        user=world.owner_id,
        guild=world.guild_id,
        channel=world.channel_id,
    )
    await world.double.wait_for_interaction_reply(interaction.id, timeout=15)
    await world.double.wait_for(
        lambda: (
            sum("State: succeeded" in m.text() for m in world.double.messages(world.channel_id))
            >= 2
        ),
        60,
        "the second echo deployment to succeed",
    )
    again.process.send_signal(signal.SIGTERM)
    assert await again.finish() == 0
    logs = "\n".join(world.outputs)
    assert any(line.startswith("{") for line in world.outputs), "JSON lines were seen"
    assert any("[debug" in line for line in world.outputs), "console lines were seen"
    assert "interactions/" in logs, "discord.py's DEBUG request lines were seen"

    # -- every place, every token.
    interaction_tokens = list(world.double.state.interactions_by_token)
    assert interaction_tokens
    tokens = [SHIPCORD_TOKEN, ECHO_TOKEN, LEAKY_TOKEN]
    stored = b"".join(path.read_bytes() for path in world.data_dir.glob("*.db*"))
    discord_side = repr(world.double.state.messages)
    assert hits(tokens, logs, stored, *histories, discord_side, *metrics) == []
    assert hits(interaction_tokens, logs) == []
    assert "login refused" not in notice.text()

    # -- file modes: the folder and every file in it are the owner's alone.
    modes = data_files(world.data_dir)
    assert modes.pop("releases") == 0o700
    assert {"shipcord.db", "temporal.db", "temporal-server.log", "releases/leaky-1.log"} <= set(
        modes
    )
    assert set(modes.values()) == {0o600}, modes
    assert world.data_dir.stat().st_mode & 0o777 == 0o700
