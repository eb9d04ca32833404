"""What the benchmarks share: sleeping target bots, production logging, the server process."""

from __future__ import annotations

from pathlib import Path

import psutil

from shipcord.logs import configure_logging

TOKEN_ENV = "SHIPCORD_BENCH_TOKEN"


def sleeper_targets(prefix: str, count: int, *, healthy_after: float = 0.0) -> str:
    """A targets file of `count` bots that run `sleep`, healthy after `healthy_after` s."""
    return "".join(
        f'[bots.{prefix}-{n}]\ncommand = ["sleep", "600"]\ntoken_env = "{TOKEN_ENV}"\n'
        f"healthy_after = {healthy_after}\n\n"
        for n in range(count)
    )


def quiet_logs(path: Path) -> None:
    """shipcord's log pipeline as in production (JSON lines at INFO), into a file."""
    configure_logging("INFO", "json", stream=path.open("a", encoding="utf-8"))


def temporal_child() -> psutil.Process:
    """The dev server process that temporalio started as a child of this one."""
    for child in psutil.Process().children(recursive=True):
        if child.name().startswith("temporal"):
            return child
    raise RuntimeError("no Temporal dev server among this process's children")
