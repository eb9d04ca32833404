"""Secrets leave shipcord's process environment before anything else runs."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping

from workflows import tokens

__all__ = ["HANDOVER_VARIABLE", "hand_over_secrets", "receive_secrets", "secret_names"]

HANDOVER_VARIABLE = "SHIPCORD_SECRETS_FD"
SETTINGS_SECRETS = ("DISCORD_TOKEN", "TEMPORAL_API_KEY", "SHIPCORD_PAYLOAD_KEY")
# Names that say "secret": ECHO_BOT_TOKEN, GITHUB_TOKEN, DB_PASSWORD, STRIPE_API_KEY.
SECRET_NAME = re.compile(r".*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
# A pipe holds this much without a reader; more than that is not a set of tokens.
PIPE_CAPACITY = 60_000


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
    unless there are none or this image already received them."""
    if HANDOVER_VARIABLE in os.environ:
        return
    names = secret_names(os.environ, target_token_names)
    if not names:
        return
    secrets = {name: os.environ[name] for name in sorted(names)}
    data = json.dumps(secrets).encode()
    if len(data) > PIPE_CAPACITY:
        return  # not tokens: leave the environment as it is rather than block on the pipe
    reader, writer = os.pipe()
    os.write(writer, data)
    os.close(writer)
    os.set_inheritable(reader, True)
    environment = {name: value for name, value in os.environ.items() if name not in names}
    environment[HANDOVER_VARIABLE] = str(reader)
    sys.stdout.flush()
    sys.stderr.flush()
    # sys.orig_argv is the command exactly as started (`python -m shipcord run`, or the
    # `shipcord` script), interpreter options included.
    os.execve(sys.executable, sys.orig_argv, environment)


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
