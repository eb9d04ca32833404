"""Why a file cannot be read, in words that say what to change.

A secret file mounted from the host is often root's and 0600, while shipcord runs as
another uid (10001 in the image): "Permission denied" alone does not say which uid must
read it."""

from __future__ import annotations

import os
from pathlib import Path


def why_unreadable(path: Path, error: OSError | UnicodeDecodeError) -> str:
    """The reason `path` could not be read; for a permission, which uid must read it."""
    if isinstance(error, PermissionError):
        uid = os.geteuid()
        return (
            f"permission denied: shipcord runs as uid {uid} (gid {os.getegid()}), which must "
            f"be able to read it{_ownership(path)}; make it readable by uid {uid} (its owner "
            "or group, e.g. chown or chgrp) or run shipcord as a uid that can read it"
        )
    if isinstance(error, UnicodeDecodeError):
        return "not a text file"
    return error.strerror or str(error)


def _ownership(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return f" (and search its folder {path.parent})"
    return f" (it is uid {stat.st_uid}'s, gid {stat.st_gid}, mode {stat.st_mode & 0o777:04o})"


def token_file_problem(path: Path) -> str | None:
    """Why the token file `path`, which is there, gives no token; None when it gives one or
    is not there (which "no token in the file" says well enough)."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        return f"cannot read {path}: {why_unreadable(path, error)}"
    return None if value else f"{path} is empty"
