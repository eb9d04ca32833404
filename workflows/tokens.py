"""Where tokens come from: a variable (the environment, the values shipcord took out of its
environment at start, or the `.env` file) or a file."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from workflows.redaction import register_secret

__all__ = [
    "accept_handed_over",
    "env_file",
    "read_token_file",
    "read_variable",
    "use_env_file",
]

_lock = threading.Lock()
_handed_over: dict[str, str] = {}
_env_file: Path | None = None
_env_file_stamp: tuple[int, int] | None = None
_env_file_values: dict[str, str] = {}


def accept_handed_over(values: Mapping[str, str]) -> None:
    """Keep variables that shipcord removed from its environment, readable by name."""
    with _lock:
        _handed_over.update(values)
    for value in values.values():
        register_secret(value)


def use_env_file(path: Path | None) -> None:
    """Read variables missing from the environment from this `.env` file (None: none)."""
    global _env_file, _env_file_stamp
    with _lock:
        _env_file = path
        _env_file_stamp = None
        _env_file_values.clear()


def env_file() -> Path | None:
    return _env_file


def _from_env_file(name: str) -> str | None:
    global _env_file_stamp, _env_file_values
    path = _env_file
    if path is None:
        return None
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return None
    with _lock:
        if stamp != _env_file_stamp:
            try:
                parsed = dotenv_values(path, encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
            _env_file_values = {key: value for key, value in parsed.items() if value}
            _env_file_stamp = stamp
        return _env_file_values.get(name)


def read_variable(name: str) -> str | None:
    """The value of variable `name` from the environment, the handed-over values or `.env`."""
    value = os.environ.get(name) or _handed_over.get(name) or _from_env_file(name)
    value = value.strip() if value else None
    if not value:
        return None
    register_secret(value)
    return value


def read_token_file(path: Path) -> str | None:
    """The token in a secrets file (surrounding whitespace dropped), or None if unreadable."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not value:
        return None
    register_secret(value)
    return value
