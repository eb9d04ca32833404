"""What `shipcord run` costs to keep: memory idle and with many open deployments, the
steady load those deployments put on Temporal, and the time from start to ready.

    .venv/bin/python -m bench.footprint [--open 500]

Memory is the resident set of the `shipcord run` process alone (front end and worker;
the Temporal server is another process and is not counted). The open deployments are
started with /deploy, as people would, and paused at once, so that they stay open
without running anything; the steady load is what Temporal's frontend answered for
them per second while nothing happened. Start to ready is from launching `shipcord run`
with the embedded Temporal server until its worker runs and its bot is connected: cold
(a new data directory) and warm (the same one again).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.stack import (
    OPERATIONS,
    Shipcord,
    Temporal,
    discord_double,
    once_started,
    ready,
    shipcord_env,
    shipcord_run,
    temporal_server,
)
from tests.engine.harness import kill_release_processes
from workflows.models import PAUSE_SIGNAL, DeploymentState, DeploymentStatus

BATCH = 50
SETTLE = 5.0  # seconds of quiet before memory is read
STEADY = 30.0  # seconds over which the steady load is counted
MB = 1024 * 1024


@dataclass
class FootprintResult:
    rss_idle_mb: float
    rss_open_mb: float
    open_deployments: int
    steady_calls_per_s: dict[str, float]  # Temporal frontend calls per second, all open
    ready_cold_s: float
    ready_warm_s: float


def gated_targets(prefix: str, count: int, gate_port: int) -> str:
    """Bots that never turn healthy (should one run before its pause lands)."""
    return "".join(
        f'[bots.{prefix}-{n}]\ncommand = ["sleep", "3600"]\ntoken_env = "SHIPCORD_BENCH_TOKEN"\n'
        f'health_url = "http://127.0.0.1:{gate_port}/never"\nhealth_timeout = 240\n\n'
        for n in range(count)
    )


async def closed_gate() -> web.AppRunner:
    async def unhealthy(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/never", unhealthy)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def settled_rss(shipcord: Shipcord) -> float:
    # Memory settles with time (allocations after a burst, caches): a benchmark waits.
    await asyncio.sleep(SETTLE)
    samples = []
    for _ in range(5):
        samples.append(shipcord.rss())
        await asyncio.sleep(0.5)
    return round(statistics.median(samples) / MB, 1)


async def open_and_pause(temporal: Temporal, double: Any, count: int, channels: int) -> list[str]:
    """/deploy `count` bots, pausing each as soon as its answer names it."""
    guild = double.ids["guilds"]["bench"]
    channel_ids = [guild["channels"][f"c{n}"] for n in range(channels)]
    workflow_ids: list[str] = []

    async def deploy(n: int) -> None:
        interaction = await double.control.dispatch(
            bot="shipcord",
            user=f"user-{n % 10}",
            command="deploy",
            options={"bot": f"fp-{n}", "version": "1.0.0"},
            channel_id=channel_ids[n % channels],
        )
        reply = await double.control.wait_for_reply(interaction["id"], timeout=60)
        workflow_id = reply["reply"]["content"].split("`")[3]
        handle = temporal.client.get_workflow_handle(workflow_id)
        await once_started(lambda: handle.signal(PAUSE_SIGNAL))
        workflow_ids.append(workflow_id)

    for start in range(0, count, BATCH):
        await asyncio.gather(*(deploy(n) for n in range(start, min(count, start + BATCH))))
    return workflow_ids


def at_rest(status: DeploymentStatus) -> bool:
    """Paused; or waiting on its gate (its pause came late); or still "Starting": a pause
    that arrives with the start is taken, but the status the workflow then builds says
    running (a workflow bug, reported), and it waits before its first step all the same."""
    return status.state is DeploymentState.PAUSED or status.step in (
        "Running health check",
        "Starting",
    )


async def wait_until_still(temporal: Temporal, workflow_ids: list[str]) -> None:
    """Until every deployment is at rest."""
    deadline = time.monotonic() + 120
    while True:
        statuses = await asyncio.gather(
            *(
                temporal.client.get_workflow_handle(w).query("status", result_type=DeploymentStatus)
                for w in workflow_ids
            )
        )
        if all(at_rest(status) for status in statuses):
            return
        if time.monotonic() > deadline:
            moving = [(s.workflow_id, s.state.value, s.step) for s in statuses if not at_rest(s)]
            raise TimeoutError(f"the deployments did not all come to rest: {moving[:5]}")
        await asyncio.sleep(1.0)  # polling another system with a deadline


async def measure_open(temporal: Temporal, work: Path, count: int) -> tuple[float, float, dict]:
    gate = await closed_gate()
    try:
        gate_port = gate.addresses[0][1]
        (work / "targets.toml").write_text(gated_targets("fp", count, gate_port), encoding="utf-8")
        async with discord_double(users=10, channels=10) as double:
            env = shipcord_env(work, double, temporal=temporal.address, task_queue="footprint")
            async with shipcord_run(work, env) as shipcord:
                await ready(shipcord, double)
                idle = await settled_rss(shipcord)
                workflow_ids = await open_and_pause(temporal, double, count, 10)
                await wait_until_still(temporal, workflow_ids)
                with_open = await settled_rss(shipcord)
                before = await temporal.calls()
                await asyncio.sleep(STEADY)  # the steady load is a rate over time
                after = await temporal.calls()
                steady = {op: round((after[op] - before[op]) / STEADY, 2) for op in OPERATIONS}
    finally:
        await gate.cleanup()
        kill_release_processes(work)
    return idle, with_open, steady


async def measure_ready(work: Path) -> tuple[float, float]:
    (work / "targets.toml").write_text("", encoding="utf-8")
    times = []
    async with discord_double(users=1, channels=1) as double:
        env = shipcord_env(work, double, temporal=None, task_queue="ready")
        for _ in range(2):  # cold, then warm (the same data directory)
            async with shipcord_run(work, env) as shipcord:
                times.append(round(await ready(shipcord, double), 2))
                assert await shipcord.stop() == 0
    return times[0], times[1]


async def measure(temporal: Temporal, work: Path, count: int) -> FootprintResult:
    (work / "open").mkdir()
    (work / "ready").mkdir()
    idle, with_open, steady = await measure_open(temporal, work / "open", count)
    cold, warm = await measure_ready(work / "ready")
    return FootprintResult(
        rss_idle_mb=idle,
        rss_open_mb=with_open,
        open_deployments=count,
        steady_calls_per_s=steady,
        ready_cold_s=cold,
        ready_warm_s=warm,
    )


def report(result: FootprintResult) -> str:
    load = ", ".join(f"{op} {rate:g}/s" for op, rate in result.steady_calls_per_s.items() if rate)
    return "\n".join(
        [
            "footprint (shipcord run, without the Temporal server)",
            f"  memory: {result.rss_idle_mb:.0f} MB idle, {result.rss_open_mb:.0f} MB with"
            f" {result.open_deployments} open deployments",
            f"  steady load of {result.open_deployments} open deployments on Temporal:"
            f" {load or 'none'}",
            f"  start to ready with the embedded server: {result.ready_cold_s:.1f}s cold,"
            f" {result.ready_warm_s:.1f}s warm",
        ]
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        async with temporal_server(Path(tmp)) as temporal:
            result = await measure(temporal, Path(tmp), args.open)
    print(report(result), flush=True)
    return asdict(result)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--open", type=int, default=500, help="open deployments to hold")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
