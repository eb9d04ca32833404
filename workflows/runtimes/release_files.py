"""A release's files in the data folder: its log and the record of how its process ended."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def prepare_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    with contextlib.suppress(OSError):
        folder.chmod(FOLDER_MODE)


def make_existing_private(folder: Path) -> int:
    """Make an existing releases folder 0700 and every file in it 0600 (logs and exit
    records written by an older shipcord, or copied in); returns how many files changed."""
    if not folder.is_dir():
        return 0
    with contextlib.suppress(OSError):
        folder.chmod(FOLDER_MODE)
    changed = 0
    for entry in folder.iterdir():
        try:
            mode = entry.lstat().st_mode
            if not stat.S_ISREG(mode) or stat.S_IMODE(mode) == FILE_MODE:
                continue  # a link is left alone: its mode is its target's
            entry.chmod(FILE_MODE)
            changed += 1
        except OSError:
            continue
    return changed


def open_log(path: Path) -> int:
    """An append-only descriptor on the release log, created 0600 (and made so if older)."""
    prepare_folder(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    with contextlib.suppress(OSError):
        os.fchmod(descriptor, FILE_MODE)
    return descriptor


def append(path: Path, text: str) -> None:
    descriptor = open_log(path)
    try:
        os.write(descriptor, text.encode("utf-8", "replace"))
    finally:
        os.close(descriptor)


def read_tail(path: Path, max_bytes: int) -> tuple[str, bool]:
    """The last `max_bytes` of the log as text, and whether older output was left out."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            log.seek(start)
            data = log.read()
    except OSError:
        return "", False
    text = data.decode("utf-8", "replace")
    if start > 0:
        # Drop the partial first line: it was cut at an arbitrary byte.
        _, _, text = text.partition("\n")
    return text, start > 0


def exit_record_path(log_path: Path) -> Path:
    return log_path.with_suffix(".exit.json")


def write_exit_record(log_path: Path, record: dict[str, Any]) -> None:
    path = exit_record_path(log_path)
    partial = path.with_suffix(".tmp")
    with contextlib.suppress(OSError):
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(record, file)
        partial.replace(path)


def read_exit_record(log_path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(exit_record_path(log_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe_ending(status: int | None, seconds: float | None) -> str:
    """'exited with status 3 after 0.4 s', 'was killed by signal 9 after 12.0 s', ..."""
    if status is None:
        what = "ended (its exit status is unknown)"
    elif status < 0:
        what = f"was killed by signal {-status}"
    else:
        what = f"exited with status {status}"
    return what if seconds is None else f"{what} after {seconds:.1f} s"
