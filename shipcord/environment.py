"""Secrets leave shipcord's process environment before anything else runs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping

from workflows import tokens

__all__ = [
    "HANDOVER_VARIABLE",
    "HandOverError",
    "hand_over_secrets",
    "receive_secrets",
    "secret_names",
]

HANDOVER_VARIABLE = "SHIPCORD_SECRETS_FD"
SETTINGS_SECRETS = ("DISCORD_TOKEN", "TEMPORAL_API_KEY", "SHIPCORD_PAYLOAD_KEY")
# Names that say "secret": ECHO_BOT_TOKEN, GITHUB_TOKEN, DB_PASSWORD, STRIPE_API_KEY.
SECRET_NAME = re.compile(r".*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
# Largest first, this many secrets are named when they do not fit the pipe.
LARGEST_NAMED = 3


class HandOverError(RuntimeError):
    """The secrets could not leave the environment; the message says which and what to do."""


def secret_names(environment: Mapping[str, str], target_token_names: Iterable[str]) -> set[str]:
    """The variables of `environment` that hold secrets."""
    known = {*SETTINGS_SECRETS, *target_token_names}
    return {
        name
        for name, value in environment.items()
        if value and (name in known or SECRET_NAME.fullmatch(name)) and name != HANDOVER_VARIABLE
    }


def hand_over_secrets(target_token_names: Iterable[str]) -> None:
    """Start this command again without its secrets in the environment (does not return),
    unless there are none or this image already received them.

    Raises HandOverError, the environment unchanged, when the secrets do not fit the pipe.
    """
    if HANDOVER_VARIABLE in os.environ:
        return
    names = secret_names(os.environ, target_token_names)
    if not names:
        return
    secrets = {name: os.environ[name] for name in sorted(names)}
    data = json.dumps(secrets).encode()
    reader, writer = os.pipe()
    try:
        fitted = _fill(writer, data)
    finally:
        os.close(writer)
    if fitted < len(data):
        os.close(reader)
        raise HandOverError(_too_large(secrets, len(data), fitted))
    os.set_inheritable(reader, True)
    environment = {name: value for name, value in os.environ.items() if name not in names}
    environment[HANDOVER_VARIABLE] = str(reader)
    sys.stdout.flush()
    sys.stderr.flush()
    # sys.orig_argv is the command exactly as started (`python -m shipcord run`, or the
    # `shipcord` script), interpreter options included.
    try:
        os.execve(sys.executable, sys.orig_argv, environment)
    except OSError as error:
        os.close(reader)
        raise HandOverError(
            f"could not start again without the secrets in the environment: {error.strerror}"
        ) from None


def _fill(pipe: int, data: bytes) -> int:
    """Write as much of `data` into `pipe` as fits with nobody reading it yet; how much.

    Nobody reads until the new image starts: a write that does not fit would block forever,
    so the pipe is first grown to fit (Linux allows up to /proc/sys/fs/pipe-max-size, 1 MiB
    by default) and then written without blocking.
    """
    grow = getattr(fcntl, "F_SETPIPE_SZ", None)
    if grow is not None:
        # When it cannot grow, the writes below find out how much fits.
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe, grow, len(data))
    os.set_blocking(pipe, False)
    written = 0
    while written < len(data):
        try:
            written += os.write(pipe, data[written:])
        except BlockingIOError:
            break
    return written


def _too_large(secrets: Mapping[str, str], size: int, fitted: int) -> str:
    largest = sorted(secrets, key=lambda name: -len(secrets[name]))[:LARGEST_NAMED]
    return (
        f"the secrets in shipcord's environment ({size} bytes; the largest: "
        f"{', '.join(largest)}) do not fit the pipe that hands them over ({fitted} bytes "
        "did), and left there they would stay readable in /proc/<pid>/environ: move the "
        "large ones to files (DISCORD_TOKEN_FILE, a target's token_file) or out of "
        "shipcord's environment"
    )


def receive_secrets() -> dict[str, str]:
    """The secrets the previous image handed over (also given to `workflows.tokens`)."""
    descriptor = os.environ.pop(HANDOVER_VARIABLE, None)
    if descriptor is None or not descriptor.isdigit():
        return {}
    chunks = []
    with os.fdopen(int(descriptor), "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    secrets = json.loads(b"".join(chunks) or b"{}")
    values = {str(name): str(value) for name, value in secrets.items()}
    tokens.accept_handed_over(values)
    return values
