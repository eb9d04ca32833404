"""An upgrade from each earlier release, for real: that release's `shipcord run` on a fresh
data folder with deployments in flight, SIGTERM, then today's `shipcord run` on the same
folder. Everything it left must carry on (docs/upgrading.md, "How it is tested").

The earlier release runs from a `git worktree` of its commit, with this environment's
Python and `PYTHONPATH` set to that tree (PYTHONPATH comes before the editable install in
`sys.path`; the test checks that the old modules are the ones imported).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.cli_world import ECHO_TOKEN, Shipcord, World, running_world
from tests.discord_double import MessageRecord
from tests.engine.harness import release_processes

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0


@dataclass(frozen=True)
class Release:
    ref: str
    package: str  # the package whose `__main__` is the `shipcord` command at that commit
    approvals: bool


RELEASES = [
    Release("1d2ad73", "shipcord", approvals=True),
    Release("c107ed9", "bot", approvals=False),
]


def targets(gate_port: int, approver_role: int | None) -> str:
    """Only keys every release knows (targets are `extra="forbid"`)."""
    text = (
        '[bots.keeper]\ncommand = ["sleep", "600"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
        "healthy_after = 0.5\n"
        '\n[bots.slow]\ncommand = ["sleep", "600"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
        f'health_url = "http://127.0.0.1:{gate_port}/healthz"\n'
        "healthy_after = 0\nhealth_timeout = 200\n"
    )
    if approver_role is not None:
        text += (
            '\n[bots.gated]\ncommand = ["sleep", "600"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
            f'healthy_after = 0.5\napproval = {{ role = "{approver_role}", timeout = "1h" }}\n'
        )
    return text


def made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def write_targets(world: World, approver_role: int | None) -> None:
    path = Path(world.env["SHIPCORD_TARGETS_FILE"])
    path.write_text(targets(world.gate.port, approver_role), encoding="utf-8")


@contextmanager
def checked_out(ref: str, folder: Path) -> Iterator[Path]:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=120
        )

    if git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        pytest.skip(f"release {ref} is not in this checkout's history (a shallow clone?)")
    tree = folder / f"shipcord-{ref}"
    added = git("worktree", "add", "--detach", str(tree), ref)
    assert added.returncode == 0, added.stderr
    try:
        yield tree
    finally:
        git("worktree", "remove", "--force", str(tree))


def deployments(world: World) -> dict[str, tuple[str, str, bool, str | None]]:
    """Each bot's latest deployment: (workflow id, state, open, message id). Read-only and
    with plain SQL, so that an old release's database is not migrated under it."""
    path = world.data_dir / "shipcord.db"
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute(
            "SELECT bot_name, workflow_id, state, is_open, message_id FROM deployments "
            "ORDER BY created_at"
        ).fetchall()
    return {bot: (wf, state, bool(is_open), message) for bot, wf, state, is_open, message in rows}


def error_of(world: World, workflow_id: str) -> str | None:
    path = world.data_dir / "shipcord.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        row = db.execute(
            "SELECT error FROM deployments WHERE workflow_id = ?", (workflow_id,)
        ).fetchone()
    return None if row is None else row[0]


async def wait_for_state(world: World, bot: str, state: str, *, is_open: bool = False) -> str:
    deadline = time.monotonic() + TIMEOUT
    while True:
        row = deployments(world).get(bot)
        if row is not None and row[1] == state and row[2] == is_open:
            return row[0]
        ended = row is not None and not row[2] and row[1] != state
        assert not ended and time.monotonic() < deadline, (
            f"{bot} never reached {state}: {row}, {error_of(world, row[0] if row else '')}; "
            + "\n".join(world.outputs[-40:])
        )
        await asyncio.sleep(0.2)


async def progress_message(world: World, bot: str) -> MessageRecord:
    deadline = time.monotonic() + TIMEOUT
    while (row := deployments(world).get(bot)) is None or row[3] is None:
        assert time.monotonic() < deadline, f"no progress message for {bot}"
        await asyncio.sleep(0.2)
    return world.double.message(int(row[3]))


def button(message: MessageRecord, action: str) -> str | None:
    for row in message.components:
        for item in row["components"]:
            if item.get("custom_id", "").startswith(f"shipcord:{action}:"):
                return str(item["custom_id"])
    return None


async def command(world: World, name: str, options: dict[str, str], user: int) -> str:
    interaction = await world.double.dispatch_command(
        world.shipcord_bot_id,
        name,
        options,
        user=user,
        guild=world.guild_id,
        channel=world.channel_id,
    )
    await world.double.wait_for_interaction_reply(interaction.id, timeout=60)
    reply = world.double.interaction_reply(interaction.id)
    assert reply is not None
    return reply.text()


async def click(world: World, message: MessageRecord, custom_id: str, user: int) -> str:
    interaction = await world.double.dispatch_component(
        world.shipcord_bot_id, message.id, custom_id, user=user
    )
    await world.double.wait_for_interaction_reply(interaction.id, timeout=60)
    reply = world.double.interaction_reply(interaction.id)
    assert reply is not None
    return reply.text()


async def started(world: World, package: str, env: dict[str, str]) -> Shipcord:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        package,
        "run",
        env=env,
        cwd=str(world.data_dir.parent),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    world.started.append(process)
    shipcord = Shipcord(process, world.outputs)
    await shipcord.wait_for_line("Worker running", timeout=TIMEOUT)
    await world.double.wait_for_bot_ready(world.shipcord_bot_id, timeout=TIMEOUT)
    return shipcord


def imported_from(package: str, env: dict[str, str], cwd: Path) -> list[str]:
    """Where `python -m <package>` would take the modules from, with that environment."""
    code = (
        f"import {package}.cli, workflows, storage\n"
        f"for m in ({package}.cli, workflows, storage): print(m.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def keeper_processes(world: World) -> list[psutil.Process]:
    found = []
    for process in release_processes(world.data_dir.parent):
        try:
            if process.environ().get("SHIPCORD_RELEASE", "").startswith("keeper#"):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("release", RELEASES, ids=[r.ref for r in RELEASES])
async def test_an_upgrade_from_an_earlier_release_keeps_everything(
    tmp_path: Path, release: Release
) -> None:
    with checked_out(release.ref, tmp_path / "trees") as tree:
        async with running_world(made(tmp_path / "world")) as world:
            await upgrade(world, release, tree)


async def upgrade(world: World, release: Release, tree: Path) -> None:
    double = world.double
    owner = world.owner_id
    approver = double.add_user("bob").id
    role = double.add_role(world.guild_id, "ops").id if release.approvals else None
    double.add_member(world.guild_id, approver, roles=[role] if role is not None else [])
    write_targets(world, role)
    assert world.env["SHIPCORD_TEST_ECHO_TOKEN"] == ECHO_TOKEN

    # (a) The earlier release, and only its code, on a fresh data folder.
    old_env = dict(world.env, PYTHONPATH=str(tree))
    for path in await asyncio.to_thread(
        imported_from, release.package, old_env, world.data_dir.parent
    ):
        assert Path(path).is_relative_to(tree), path
    old = await started(world, release.package, old_env)

    # (b) One deployment to success, one paused mid-way, one awaiting approval.
    await command(world, "deploy", {"bot": "keeper", "version": "1.0.0"}, owner)
    await wait_for_state(world, "keeper", "succeeded")
    [kept] = keeper_processes(world)

    await command(world, "deploy", {"bot": "slow", "version": "1.0.0"}, owner)
    slow = await progress_message(world, "slow")
    await double.wait_for(
        lambda: (
            "Running health check" in double.message(slow.id).text()
            and button(double.message(slow.id), "pause") is not None
        ),
        TIMEOUT,
        "slow's health check (held by the gate)",
    )
    pause = button(double.message(slow.id), "pause")
    assert pause is not None
    answer = await click(world, slow, pause, owner)
    assert "Paus" in answer, answer
    slow_id = pause.split(":", 2)[2]

    gated_id = None
    if release.approvals:
        await command(world, "deploy", {"bot": "gated", "version": "1.0.0"}, owner)
        gated = await progress_message(world, "gated")
        await double.wait_for(
            lambda: button(double.message(gated.id), "approve") is not None,
            TIMEOUT,
            "gated's Approve button",
        )
        gated_id = deployments(world)["gated"][0]

    # (c) Stopped as an operator stops it.
    old.process.send_signal(signal.SIGTERM)
    assert await old.finish(timeout=TIMEOUT) == 0, "\n".join(old.lines[-30:])

    # (d) Today's code on the same data folder.
    new_env = dict(world.env, SHIPCORD_RECONCILE_INTERVAL="1")
    for path in await asyncio.to_thread(imported_from, "shipcord", new_env, world.data_dir.parent):
        assert not Path(path).is_relative_to(tree), path
    new = await started(world, "shipcord", new_env)

    # The paused deployment resumes and ends deployed.
    world.gate.is_open = True
    answer = await command(world, "resume", {"deployment": slow_id}, owner)
    assert answer.startswith(("Resumed", "Resuming")), answer
    await wait_for_state(world, "slow", "succeeded")
    await double.wait_for(
        lambda: "State: succeeded" in double.message(slow.id).text(),
        TIMEOUT,
        "slow's progress message to say it succeeded",
    )

    # The one awaiting approval is approved by another member than its owner.
    if gated_id is not None:
        approve = f"shipcord:approve:{gated_id}"
        answer = await click(world, gated, approve, approver)
        assert answer.startswith(("Approved", "Approving")), answer
        await wait_for_state(world, "gated", "succeeded")

    # /status and /history answer, with the earlier deployments and their releases.
    status = await command(world, "status", {}, owner)
    assert "Something went wrong" not in status, status
    for bot in ("keeper", "slow", *(["gated"] if gated_id else [])):
        history = await command(world, "history", {"bot": bot}, owner)
        assert "Something went wrong" not in history, history
        assert "`1.0.0`" in history and "succeeded" in history, history
        # c107ed9 closed its rows without the result: the number comes from its release.
        assert "#1 `1.0.0`" in history, history

    # The release deployed before the upgrade is still supervised: killed, it comes back.
    kept.kill()
    deadline = time.monotonic() + TIMEOUT
    while not [p for p in keeper_processes(world) if p.pid != kept.pid]:
        assert time.monotonic() < deadline, "keeper's release was not started again"
        await asyncio.sleep(0.2)

    # A new deployment works.
    first = deployments(world)["keeper"][0]
    await command(world, "deploy", {"bot": "keeper", "version": "2.0.0"}, owner)
    deadline = time.monotonic() + TIMEOUT
    while (row := deployments(world)["keeper"])[0] == first or row[1:3] != ("succeeded", False):
        assert time.monotonic() < deadline, f"keeper 2.0.0 did not succeed: {row}"
        await asyncio.sleep(0.2)
    history = await command(world, "history", {"bot": "keeper"}, owner)
    assert "#2 `2.0.0`" in history, history

    output = "\n".join(new.lines)
    assert "Traceback" not in output, output[-5000:]
    new.process.send_signal(signal.SIGTERM)
    assert await new.finish(timeout=TIMEOUT) == 0
