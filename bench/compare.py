"""Set a run's figures beside an earlier run's: the same keys, and how much each moved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Where a higher number is better; everywhere else lower is better.
HIGHER_IS_BETTER = ("throughput", "ratio")


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
    before = dict(flatten({k: v for k, v in earlier.items() if k != "machine"}))
    lines = [f"compared with {label} ({earlier.get('when', 'unknown date')}):"]
    for key, value in flatten({k: v for k, v in now.items() if k != "machine"}):
        if key not in before:
            continue
        was = before[key]
        change = "" if was == 0 else f" ({(value - was) / abs(was):+.0%})"
        better = any(word in key for word in HIGHER_IS_BETTER)
        mark = ""
        if was and abs(value - was) / abs(was) >= 0.2:
            mark = "  better" if (value > was) == better else "  WORSE"
        lines.append(f"  {key}: {value:g} (was {was:g}){change}{mark}")
    return "\n".join(lines)
