"""Set a run's figures beside an earlier run's: the same keys, and how much each moved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Where a higher number is better; everywhere else lower is better.
HIGHER_IS_BETTER = ("throughput",)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """`board[30x1].answer_s.p95`-style keys for every number in a results file."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            name = (
                f"{item['deployments']}x{item['channels']}"
                if isinstance(item, dict) and "deployments" in item
                else str(index)
            )
            yield from flatten(item, f"{prefix}[{name}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield prefix, float(value)


def compare(earlier: dict[str, Any], now: dict[str, Any], *, label: str) -> str:
    """The figures that moved by 5 % or more, each with its earlier value."""
    before = dict(flatten({k: v for k, v in earlier.items() if k != "machine"}))
    lines = [f"compared with {label} ({earlier.get('when', 'unknown date')}):"]
    steady = 0
    for key, value in flatten({k: v for k, v in now.items() if k != "machine"}):
        was = before.get(key)
        if was is None:
            continue
        moved = abs(value - was) / abs(was) if was else (1.0 if value else 0.0)
        if moved < 0.05:
            steady += 1
            continue
        better = any(word in key for word in HIGHER_IS_BETTER)
        verdict = "better" if (value > was) == better else "worse"
        change = f"{(value - was) / abs(was):+.0%}" if was else "new"
        lines.append(f"  {key}: {value:g} (was {was:g}, {change}, {verdict})")
    lines.append(f"  ({steady} more within 5 %)")
    return "\n".join(lines)
