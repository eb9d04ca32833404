"""shipcord's deployment engine against a bare temporalio workflow, same server, same run.

    .venv/bin/python -m bench.engine [--concurrency 50] [--rounds 3] [--sequential 15]

A shipcord deployment here is the real thing (token check against the local Discord
double, SQLite records, a `sleep` process started by the process runtime, health-checked
and recorded) of a target that is healthy at once; the yardstick is a workflow with as
many no-op activities (`bench.bare`), on its own task queue of the same dev server (run
as `shipcord run` runs it: a SQLite file in WAL mode), with a worker as temporalio makes
it by default. Both are driven from outside, like any Temporal client: start, then wait
for the result. Latency is one deployment at a time (p50); throughput is `--concurrency`
at once (median of the rounds). CPU is per deployment: this process (worker, client and
the double), and the Temporal server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BARE_WORKFLOW, BareStepsWorkflow, noop
from bench.common import TOKEN_ENV, quiet_logs, sleeper_targets
from bench.stack import Temporal, temporal_server
from storage import Storage
from tests.discord_double import DiscordDouble
from tests.engine.harness import kill_release_processes
from workflows.deployment_client import DeploymentClient, unix_ms
from workflows.models import DeploymentInput, deployment_workflow_id
from workflows.worker import engine_worker

# The activities of a successful deployment: validate, check the token, record, deploy,
# health-check, finish.
STEPS = 6
SHIPCORD_QUEUE = "engine-shipcord"
BARE_QUEUE = "engine-bare"

RunOne = Callable[[], Awaitable[bool]]


@dataclass
class EngineResult:
    steps: int
    concurrency: int
    shipcord_latency_p50: float
    bare_latency_p50: float
    latency_ratio: float  # shipcord / bare: 1.0 means shipcord adds nothing
    shipcord_throughput: float
    bare_throughput: float
    throughput_ratio: float  # shipcord / bare
    shipcord_cpu_ms: float  # per deployment, this process (worker + client + Discord double)
    bare_cpu_ms: float
    shipcord_server_cpu_ms: float  # per deployment, the Temporal server
    bare_server_cpu_ms: float
    shipcord_ok: int
    shipcord_runs: int


async def timed_runs(run_one: RunOne, count: int) -> list[float]:
    """`count` runs one after the other; the seconds each took."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        assert await run_one()
        seconds.append(time.perf_counter() - started)
    return seconds


@dataclass
class Round:
    rate: float  # deployments per second
    cpu: float  # CPU seconds of this process (worker, client, double) per deployment
    server_cpu: float  # CPU seconds of the Temporal server per deployment


async def throughput(run_one: RunOne, concurrency: int, server: psutil.Process) -> Round:
    cpu, server_cpu = process_cpu(), cpu_of(server)
    started = time.perf_counter()
    assert all(await asyncio.gather(*(run_one() for _ in range(concurrency))))
    elapsed = time.perf_counter() - started
    return Round(
        rate=concurrency / elapsed,
        cpu=(process_cpu() - cpu) / concurrency,
        server_cpu=(cpu_of(server) - server_cpu) / concurrency,
    )


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Engines:
    """Both engines, started on one server; `shipcord()` and `bare()` run one deployment."""

    def __init__(self, client: Client, work: Path) -> None:
        self._client = client
        self._work = work
        self._deployments = DeploymentClient(client, SHIPCORD_QUEUE)
        self._names = (f"engine-{n}" for n in itertools.count())
        self._base_ms = unix_ms()
        self.shipcord_runs = 0
        self.shipcord_ok = 0

    async def shipcord(self) -> bool:
        name = next(self._names)
        workflow_id = deployment_workflow_id(name, self._base_ms)
        await self._deployments.start(
            DeploymentInput(bot_name=name, owner="bench", version="1.0.0"), workflow_id=workflow_id
        )
        result = await self._deployments.result(workflow_id)
        self.shipcord_runs += 1
        self.shipcord_ok += result.success
        return result.success

    async def bare(self) -> bool:
        outcome: bool = await self._client.execute_workflow(
            BARE_WORKFLOW, STEPS, id=f"bare-{uuid.uuid4().hex}", task_queue=BARE_QUEUE
        )
        return outcome

    def clean(self) -> None:
        """Stop the releases so far: each round starts with as few processes as the first."""
        kill_release_processes(self._work)


@asynccontextmanager
async def running_engines(client: Client, work: Path, count: int) -> AsyncIterator[Engines]:
    (work / "targets.toml").write_text(sleeper_targets("engine", count), encoding="utf-8")
    os.environ[TOKEN_ENV] = "bench-engine-token"
    async with AsyncExitStack() as stack:
        double = await stack.enter_async_context(DiscordDouble())
        double.add_bot("bench-engine-token", "target")
        storage = await stack.enter_async_context(await Storage.open(work / "shipcord.db"))
        await stack.enter_async_context(
            engine_worker(
                client,
                task_queue=SHIPCORD_QUEUE,
                storage=storage,
                targets_file=work / "targets.toml",
                data_dir=work,
                discord_api_base=double.api_base,
            )
        )
        # A worker as temporalio makes it by default, nothing more.
        await stack.enter_async_context(
            Worker(client, task_queue=BARE_QUEUE, workflows=[BareStepsWorkflow], activities=[noop])
        )
        engines = Engines(client, work)
        try:
            yield engines
        finally:
            engines.clean()


async def measure(
    client: Client,
    work: Path,
    server: psutil.Process,
    *,
    concurrency: int,
    rounds: int,
    sequential: int,
) -> EngineResult:
    count = sequential + 1 + concurrency * rounds
    async with running_engines(client, work, count) as engines:
        # Warm both up (imports, sandbox, connections) before anything is timed.
        await asyncio.gather(engines.shipcord(), engines.bare())
        shipcord_seconds, bare_seconds = [], []
        for _ in range(sequential):
            shipcord_seconds += await timed_runs(engines.shipcord, 1)
            bare_seconds += await timed_runs(engines.bare, 1)
        engines.clean()
        shipcord_rounds, bare_rounds = [], []
        for _ in range(rounds):
            shipcord_rounds.append(await throughput(engines.shipcord, concurrency, server))
            engines.clean()
            bare_rounds.append(await throughput(engines.bare, concurrency, server))
        shipcord_p50 = statistics.median(shipcord_seconds)
        bare_p50 = statistics.median(bare_seconds)
        shipcord_rate = statistics.median(r.rate for r in shipcord_rounds)
        bare_rate = statistics.median(r.rate for r in bare_rounds)
        return EngineResult(
            steps=STEPS,
            concurrency=concurrency,
            shipcord_latency_p50=round(shipcord_p50, 4),
            bare_latency_p50=round(bare_p50, 4),
            latency_ratio=round(shipcord_p50 / bare_p50, 3),
            shipcord_throughput=round(shipcord_rate, 2),
            bare_throughput=round(bare_rate, 2),
            throughput_ratio=round(shipcord_rate / bare_rate, 3),
            shipcord_cpu_ms=round(1000 * statistics.median(r.cpu for r in shipcord_rounds), 1),
            bare_cpu_ms=round(1000 * statistics.median(r.cpu for r in bare_rounds), 1),
            shipcord_server_cpu_ms=round(
                1000 * statistics.median(r.server_cpu for r in shipcord_rounds), 1
            ),
            bare_server_cpu_ms=round(
                1000 * statistics.median(r.server_cpu for r in bare_rounds), 1
            ),
            shipcord_ok=engines.shipcord_ok,
            shipcord_runs=engines.shipcord_runs,
        )


def report(result: EngineResult) -> str:
    return "\n".join(
        [
            f"engine ({result.steps} activities each; throughput at {result.concurrency} at once)",
            f"  {'':10} {'p50 latency':>12} {'deploys/s':>10} {'CPU ms':>8} {'server ms':>10}",
            f"  {'shipcord':10} {result.shipcord_latency_p50:>11.3f}s"
            f" {result.shipcord_throughput:>10.1f} {result.shipcord_cpu_ms:>8.1f}"
            f" {result.shipcord_server_cpu_ms:>10.1f}",
            f"  {'bare':10} {result.bare_latency_p50:>11.3f}s {result.bare_throughput:>10.1f}"
            f" {result.bare_cpu_ms:>8.1f} {result.bare_server_cpu_ms:>10.1f}",
            f"  ratios (shipcord ÷ bare): latency {result.latency_ratio:.2f},"
            f" throughput {result.throughput_ratio:.2f}"
            f" ({result.shipcord_ok}/{result.shipcord_runs} shipcord deployments succeeded)",
        ]
    )


async def measure_on(temporal: Temporal, work: Path, args: argparse.Namespace) -> EngineResult:
    quiet_logs(work / "shipcord.log")
    return await measure(
        temporal.client,
        work,
        temporal.process,
        concurrency=args.concurrency,
        rounds=args.rounds,
        sequential=args.sequential,
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        async with temporal_server(Path(tmp)) as temporal:
            result = await measure_on(temporal, Path(tmp), args)
    print(report(result), flush=True)
    return asdict(result)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
