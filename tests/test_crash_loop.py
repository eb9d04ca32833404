"""kill -9 of the whole `shipcord run` at seeded random moments, across every step of many
deployments, each followed by a restart: nothing is lost, doubled or orphaned.

The seed comes from SHIPCORD_CRASH_SEED (a new one each run otherwise) and is printed with
the moments, so that a failing run can be replayed exactly. The figures are printed too;
docs/operations.md ("The crash-loop test") reports them.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import psutil
from temporalio.client import Client

from storage import Storage
from tests.cli_world import Shipcord, World, start_shipcord
from tests.discord_double import MessageRecord
from tests.engine.harness import release_processes
from tests.test_cli import world
from workflows.deployment_client import DeploymentClient

__all__ = ["world"]  # the fixture, shared with test_cli

RUNS = 10
# A deployment takes about 3 s here (token check, records, a process, 1.5 s of health
# check): kills land anywhere from before the reservation to after the last step.
LATEST_KILL = 4.0
ENDED_WITHIN = 180.0


def targets(count: int) -> str:
    blocks = []
    for n in range(count):
        blocks.append(
            f'\n[bots.ok-{n}]\ncommand = ["sleep", "600"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
            "healthy_after = 1.5\n"
        )
        blocks.append(
            f'\n[bots.fail-{n}]\ncommand = ["sh", "-c", "sleep 1; exit 3"]\n'
            'token_env = "SHIPCORD_TEST_ECHO_TOKEN"\nhealthy_after = 1.5\n'
        )
    return "".join(blocks)


async def restart(world: World) -> Shipcord:
    shipcord = await start_shipcord(world, "run")
    await shipcord.wait_for_line("Worker running", timeout=90)
    await shipcord.wait_for_line("Discord bot connecting", timeout=30)
    return shipcord


async def test_kill_9_at_random_moments_loses_doubles_and_orphans_nothing(world: World) -> None:
    seed = int(os.environ.get("SHIPCORD_CRASH_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    plan = [
        (f"{'fail' if n % 3 == 0 else 'ok'}-{n}", rng.uniform(0, LATEST_KILL)) for n in range(RUNS)
    ]
    print(f"crash loop: seed {seed}; kills " + ", ".join(f"{bot}@{t:.2f}s" for bot, t in plan))
    with (world.data_dir.parent / "targets.toml").open("a", encoding="utf-8") as file:
        file.write(targets(RUNS))
    world.env["SHIPCORD_RECONCILE_INTERVAL"] = "1"

    shipcord = await restart(world)
    for bot, moment in plan:
        await world.double.wait_for(
            lambda: world.double.bot_connected(world.shipcord_bot_id), 30, "the gateway"
        )
        await world.double.dispatch_command(
            world.shipcord_bot_id,
            "deploy",
            {"bot": bot, "version": "1.0.0"},
            user=world.owner_id,
            guild=world.guild_id,
            channel=world.channel_id,
        )
        # The fault: a crash at a random moment of this deployment (not a synchronisation).
        await asyncio.sleep(moment)
        shipcord.process.send_signal(signal.SIGKILL)
        await shipcord.finish()
        shipcord = await restart(world)

    address = f"127.0.0.1:{world.env['SHIPCORD_TEMPORAL_PORT']}"
    temporal = DeploymentClient(await Client.connect(address), "opencell-tasks")
    async with await Storage.open(world.data_dir / "shipcord.db") as storage:
        deadline = time.monotonic() + ENDED_WITHIN
        while waiting := await unfinished(world, storage):
            assert time.monotonic() < deadline, f"not final: {waiting}"
            await asyncio.sleep(0.5)
        rows = [r for r in await storage.list_deployments(limit=100) if r.bot_name != "slow"]

        lost = doubled = orphaned = 0
        for row in rows:
            if await temporal.exists(row.workflow_id):
                result = await temporal.result(row.workflow_id)
                assert row.state == result.final_state.value, (row, result)
            else:  # killed between the reservation and the start: it never ran
                assert row.state == "failed", row
            messages = progress_messages(world, row.message_id, row.workflow_id)
            doubled += max(0, len(messages) - 1)
            if row.state == "failed":
                notices = [
                    m
                    for m in world.double.messages(world.channel_id)
                    if m.message_reference is not None and row.workflow_id in m.text()
                ]
                dms = [
                    m
                    for m in world.double.dm_messages(world.owner_id)
                    if row.workflow_id in m.text()
                ]
                doubled += max(0, len(notices) - 1) + max(0, len(dms) - 1)
                lost += int(not notices) + int(not dms)
        for bot, _ in plan:
            running = [p for p in release_processes(world.data_dir.parent) if runs_bot(p, bot)]
            succeeded = any(r.bot_name == bot and r.state == "succeeded" for r in rows)
            expected = 1 if succeeded else 0
            doubled += max(0, len(running) - expected)
            orphaned += int(not succeeded and bool(running))
            lost += int(succeeded and not running)

    print(
        f"crash loop: {RUNS} runs, {RUNS} kill -9 faults, {len(rows)} deployments started; "
        f"lost {lost}, doubled {doubled}, orphaned {orphaned}"
    )
    assert (lost, doubled, orphaned) == (0, 0, 0)
    shipcord.process.send_signal(signal.SIGTERM)
    assert await shipcord.finish() == 0


def runs_bot(process: psutil.Process, bot: str) -> bool:
    try:
        return process.environ().get("SHIPCORD_RELEASE", "").startswith(f"{bot}#")
    except psutil.Error:
        return False


def progress_messages(world: World, message_id: str | None, workflow_id: str) -> list[object]:
    return [
        m
        for m in world.double.messages(world.channel_id)
        if m.message_reference is None
        and not m.ephemeral
        and (str(m.id) == message_id or workflow_id in m.text())
    ]


def control_buttons(message: MessageRecord) -> list[str]:
    """The custom ids of the buttons that steer a deployment (a failed one's final form
    keeps only "Show log")."""
    ids = [item["custom_id"] for row in message.components for item in row["components"]]
    return [custom_id for custom_id in ids if not custom_id.startswith("shipcord:log:")]


async def unfinished(world: World, storage: Storage) -> list[str]:
    """The deployments whose message has not its final form yet (buttons left), and why."""
    waiting = []
    for row in await storage.list_deployments(limit=100):
        if row.channel_id is None or row.bot_name == "slow":
            continue
        if row.is_open or not row.message_final or row.message_id is None:
            waiting.append(
                f"{row.workflow_id}: {row.state}, message {row.message_id}, "
                f"final {row.message_final}"
            )
        elif controls := control_buttons(world.double.message(int(row.message_id))):
            waiting.append(f"{row.workflow_id}: message {row.message_id} still has {controls}")
    return waiting
