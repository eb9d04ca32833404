"""What the benchmarks share: sleeping target bots."""

from __future__ import annotations

TOKEN_ENV = "SHIPCORD_BENCH_TOKEN"


def sleeper_targets(prefix: str, count: int) -> str:
    """A targets file of `count` bots that run `sleep` and are healthy at once."""
    return "".join(
        f'[bots.{prefix}-{n}]\ncommand = ["sleep", "600"]\ntoken_env = "{TOKEN_ENV}"\n'
        "healthy_after = 0\n\n"
        for n in range(count)
    )
