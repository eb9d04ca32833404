"""All the benchmarks side by side, in one run: engine, board, footprint.

    .venv/bin/python -m bench [--out bench-results.json] [--compare bench/baseline.json]

Prints each benchmark's figures, writes them all to one JSON file, and compares them
with an earlier run's file (by default `bench/baseline.json`, the run that
docs/performance.md quotes). One Temporal dev server serves the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import board, engine, footprint
from bench.compare import compare
from bench.stack import temporal_server

BASELINE = Path(__file__).with_name("baseline.json")


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(load, 2) for load in os.getloadavg()],
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        async with temporal_server(work) as temporal:
            if "engine" in args.only:
                (work / "engine").mkdir()
                result = await engine.measure_on(temporal, work / "engine", args)
                print(engine.report(result), flush=True)
                results["engine"] = asdict(result)
            if "board" in args.only:
                measured = await board.measure(temporal, work, args.scenarios, args.shipcord_tree)
                print(board.report(measured), flush=True)
                results["board"] = [asdict(one) for one in measured]
            if "footprint" in args.only:
                (work / "footprint").mkdir()
                held = await footprint.measure(temporal, work / "footprint", args.open)
                print(footprint.report(held), flush=True)
                results["footprint"] = asdict(held)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--compare", type=Path, default=BASELINE)
    parser.add_argument("--only", default="engine,board,footprint")
    engine.add_arguments(parser)
    board.add_arguments(parser)
    footprint.add_arguments(parser)
    args = parser.parse_args()
    results = asyncio.run(run_all(args))
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {args.out}")
    if args.compare.exists() and args.compare.resolve() != args.out.resolve():
        earlier = json.loads(args.compare.read_text(encoding="utf-8"))
        print(compare(earlier, results, label=str(args.compare)))
    # The Temporal SDK's native threads may still log while the interpreter finalises.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
