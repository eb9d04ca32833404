"""What a worker does for its host's releases when it starts: adopt those recorded before
targets were, and start again the process releases that stopped while no shipcord ran."""

from __future__ import annotations

from pathlib import Path

import structlog

from storage import Storage
from workflows.release_operator import ReleaseOperator
from workflows.runtimes import release_files
from workflows.targets import TargetsError, load_targets

log = structlog.get_logger(__name__)


async def adopt_earlier_releases(storage: Storage, *, targets_file: Path, host: str) -> int:
    """Give each release recorded without its target the one the targets file declares
    now; returns how many were adopted. Each release is logged once per start: adopted,
    or left because its bot is not declared any more."""
    earlier = await storage.releases_without_target()
    if not earlier:
        return 0
    try:
        targets = load_targets(targets_file)
    except TargetsError as error:
        log.warning(
            "earlier_releases_not_adopted", releases=len(earlier), error=str(error).split(":")[0]
        )
        return 0
    adopted = 0
    for record in earlier:
        declared = targets.bots.get(record.bot_name)
        if declared is None:
            log.warning(
                "earlier_release_left",
                bot=record.bot_name,
                release=record.number,
                reason="the targets file no longer declares this bot",
            )
            continue
        target = declared.model_copy(update={"host": host})
        if await storage.record_missing_target(record.id, target.model_dump_json()):
            adopted += 1
            log.info(
                "earlier_release_adopted",
                bot=record.bot_name,
                release=record.number,
                status=record.status,
                host=host,
                declared_host=declared.host,
            )
    return adopted


async def resume_releases_stopped_with_shipcord(storage: Storage, releases: ReleaseOperator) -> int:
    """Start again each process release that should run and does not: it stopped while no
    shipcord ran (its processes end with shipcord's container). That is no crash: not
    counted toward the crash-loop budget nor told as one. A deployment in flight finds its
    release running again, so its step (the health check included) carries on. Returns how
    many were started."""
    resumed = 0
    for record in await storage.releases_with_status("active", "running"):
        if record.runtime != "process" or record.runtime_handle is None:
            continue
        release = releases.release(record)
        try:
            if await releases.is_running(release):
                continue
            await releases.ensure_running(release, status=record.status)
        except Exception as error:
            # Supervision meets it in its first round, and says what is wrong.
            log.warning(
                "release_not_resumed",
                bot=record.bot_name,
                release=record.number,
                error=type(error).__name__,
            )
            continue
        resumed += 1
        log.info(
            "release_resumed_after_shipcord_restart", bot=record.bot_name, release=record.number
        )
    return resumed


def make_release_files_private(data_dir: Path) -> int:
    """Make the releases folder 0700 and every file in it 0600, as new ones are created:
    logs written before that rule, or under another umask, included. Returns how many
    files changed."""
    return release_files.make_existing_private(data_dir / "releases")
