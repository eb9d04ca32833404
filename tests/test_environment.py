"""Secrets leave the environment through the hand-over, in a real process that executes
itself again, whatever their size: or shipcord says why not and stops."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROBE = """
import json, os, sys
from shipcord.environment import HandOverError, hand_over_secrets, receive_secrets
received = receive_secrets()
if not received:
    try:
        hand_over_secrets(["ECHO_BOT_TOKEN"])
    except HandOverError as error:
        print(json.dumps({"refused": str(error)}))
        sys.exit(2)
with open(f"/proc/{os.getpid()}/environ", "rb") as environ:
    left = environ.read()
print(json.dumps({
    "received": {name: len(value) for name, value in received.items()},
    "left": [name.decode() for name in (line.split(b"=")[0] for line in left.split(b"\\0"))],
    "values_left": sorted(name for name, value in received.items() if value.encode() in left),
}))
"""
TOKENS = {"DISCORD_TOKEN": "shipcord-token-1f2e3d", "ECHO_BOT_TOKEN": "echo-token-4c5b6a"}


def hand_over(**extra: str) -> tuple[int, dict[str, Any]]:
    environment = {"PATH": os.environ["PATH"], **TOKENS, **extra}
    started = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in started.stderr, started.stderr
    return started.returncode, json.loads(started.stdout)


def pipe_can_hold(size: int) -> bool:
    """Whether this kernel lets an unread pipe grow to `size` bytes for this user."""
    reader, writer = os.pipe()
    try:
        return int(fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, size)) >= size
    except OSError:
        return False
    finally:
        os.close(reader)
        os.close(writer)


def test_a_large_secret_leaves_the_environment_with_the_others() -> None:
    code, outcome = hand_over(LICENCE_PRIVATE_KEY="k" * 70_000)
    assert code == 0, outcome
    assert outcome["received"] == {
        **{n: len(v) for n, v in TOKENS.items()},
        "LICENCE_PRIVATE_KEY": 70_000,
    }
    assert outcome["values_left"] == []
    assert not {"DISCORD_TOKEN", "ECHO_BOT_TOKEN", "LICENCE_PRIVATE_KEY"} & set(outcome["left"])


def test_a_large_variable_that_is_no_secret_stays_and_the_secrets_leave() -> None:
    code, outcome = hand_over(RELEASE_NOTES="n" * 70_000)
    assert code == 0, outcome
    assert set(outcome["received"]) == set(TOKENS) and outcome["values_left"] == []
    assert "RELEASE_NOTES" in outcome["left"]


def test_secrets_too_large_for_any_pipe_stop_it_saying_so() -> None:
    # Each variable below the kernel's limit for one, together past what a pipe may hold
    # here (1 MiB unless the limit was raised).
    huge = {f"HUGE_{n}_SECRET": "s" * 120_000 for n in range(10)}
    code, outcome = hand_over(**huge)
    if pipe_can_hold(1_300_000):
        assert code == 0 and outcome["values_left"] == [], outcome
        return
    assert code == 2, outcome
    refused = outcome["refused"]
    assert "do not fit the pipe that hands them over" in refused
    assert "/proc/<pid>/environ" in refused and "token_file" in refused
    assert "s" * 20 not in refused and TOKENS["DISCORD_TOKEN"] not in refused
