"""What an older shipcord left in the data folder, brought up to today's rules when a
worker starts: releases recorded without their target adopted, release files made 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import structlog
from temporalio.client import Client

from storage import Storage
from tests.discord_double import DiscordDouble
from tests.engine.harness import TARGETS, kill_release_processes, release_processes, wait_until
from workflows.release_adoption import adopt_earlier_releases
from workflows.supervision_rounds import SupervisionSettings
from workflows.supervisor_workflow import supervisor_workflow_id
from workflows.targets import Target
from workflows.worker import engine_worker

FAST = SupervisionSettings(interval_seconds=0.3, max_backoff_seconds=0.3)


async def recorded_before_targets(storage: Storage, bot: str, status: str) -> int:
    """A release row as c107ed9 wrote it: no target."""
    record = await storage.create_release(
        workflow_id=f"deploy-{bot}-1000",
        bot_name=bot,
        bot_type="discord",
        version="0.9.0",
        runtime="process",
        target=None,  # type: ignore[arg-type]
    )
    if status == "active":
        await storage.activate_release(record)
    else:
        await storage.set_release_status(record.id, status)
    return record.id


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_worker_adopts_earlier_releases_and_makes_their_logs_private(
    temporal_client: Client, double: DiscordDouble, tmp_path: Path, task_queue: str
) -> None:
    data_dir = tmp_path / "data"
    targets_file = tmp_path / "targets.toml"
    targets_file.write_text(TARGETS, encoding="utf-8")
    releases = data_dir / "releases"
    releases.mkdir(parents=True)
    releases.chmod(0o755)
    old_logs = [releases / "echo-1.log", releases / "gone-1.log", releases / "echo-1.exit.json"]
    for path in old_logs:
        path.write_text("written by an older shipcord\n", encoding="utf-8")
        path.chmod(0o644)
    supervisor = supervisor_workflow_id(task_queue, "local")
    async with await Storage.open(data_dir / "shipcord.db") as storage:
        await recorded_before_targets(storage, "echo", "active")
        await recorded_before_targets(storage, "gone", "superseded")
        try:
            with structlog.testing.capture_logs() as captured:
                async with engine_worker(
                    temporal_client,
                    task_queue=task_queue,
                    storage=storage,
                    targets_file=targets_file,
                    data_dir=data_dir,
                    discord_api_base=double.api_base,
                    supervision=FAST,
                ):
                    assert mode(releases) == 0o700
                    assert [mode(path) for path in old_logs] == [0o600] * 3
                    echo = await storage.get_release("echo", 1)
                    assert echo is not None and echo.target is not None
                    target = Target.model_validate_json(echo.target)
                    assert target.name == "echo" and target.host == "local"
                    assert target.command[1:3] == ["-m", "examples.echo_bot"]
                    # Adopted, it is supervised like any release: it runs again.
                    await wait_until(
                        lambda: runs_one(tmp_path), timeout=30, what="the adopted release to run"
                    )
                    # The bot the targets file no longer declares is left as it was.
                    [left] = await storage.releases_without_target()
                    assert left.bot_name == "gone"
                    # Adopting again changes nothing.
                    assert (
                        await adopt_earlier_releases(
                            storage, targets_file=targets_file, host="local"
                        )
                        == 0
                    )
        finally:
            await temporal_client.get_workflow_handle(supervisor).terminate("test over")
            kill_release_processes(tmp_path)
    events = [(entry["event"], entry.get("bot")) for entry in captured]
    assert events.count(("earlier_release_adopted", "echo")) == 1
    assert events.count(("release_files_made_private", None)) == 1
    # Logged once by this start (and once more by the adoption asked again above).
    assert events.count(("earlier_release_left", "gone")) == 2


async def runs_one(started_in: Path) -> bool:
    return len(release_processes(started_in)) == 1
