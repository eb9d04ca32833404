"""The data folder: shipcord's databases, the embedded server's files, the release logs."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

MODE = 0o700


class DataDirProblem(Exception):
    """The data folder cannot be used; the message is one line a person can act on."""


def prepare_data_dir(path: Path) -> None:
    """Create the folder (0700) if needed, make it 0700, and prove it is writable."""
    uid = os.geteuid()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=MODE)
    except OSError as error:
        raise DataDirProblem(
            f"cannot create the data folder {path} as uid {uid}: {error.strerror}"
        ) from None
    with contextlib.suppress(OSError):
        path.chmod(MODE)  # an older shipcord made it 0755; not ours to change: checked below
    probe = path / f".write-test-{uuid.uuid4().hex}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise DataDirProblem(
            f"the data folder {path} is not writable by uid {uid} ({error.strerror}): "
            f"make it owned by uid {uid} (for a Docker volume: a fresh named volume, or "
            f"chown {uid} on the host), or set SHIPCORD_DATA_DIR"
        ) from None
    os.close(descriptor)
    probe.unlink(missing_ok=True)
