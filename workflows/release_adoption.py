"""Releases from before targets were recorded with releases, adopted when a worker starts.

A release recorded without its target cannot be started again, supervised or put back by
a rollback. At start, each gets the target as the targets file declares it now (with the
host it lives on: this worker's, whose database holds it), once: from then on it is a
release like any other. A release whose bot the targets file no longer declares is left
as it is (supervision tells its owner it cannot be supervised).
"""

from __future__ import annotations

from pathlib import Path

import structlog

from storage import Storage
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


def make_release_files_private(data_dir: Path) -> int:
    """Make the releases folder 0700 and every file in it 0600, as new ones are created:
    logs written before that rule, or under another umask, included. Returns how many
    files changed."""
    return release_files.make_existing_private(data_dir / "releases")
