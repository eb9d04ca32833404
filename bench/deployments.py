"""Deployment throughput and progress-query rate on a real Temporal dev server.

    .venv/bin/python -m bench.deployments --deployments 50 [--persist] [--sqlite-wal]

Each deployment is a full botDeploymentWorkflow (token check against the local Discord
double, SQLite records, a real `sleep` process started and health-checked, then stopped
by the cleanup). Prints deployments per second and status queries per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.common import TOKEN_ENV, sleeper_targets
from shipcord.embedded_temporal import find_temporal_binary
from storage import Storage
from tests.discord_double import DiscordDouble
from tests.engine.harness import kill_release_processes
from workflows.client import DeploymentClient, unix_ms
from workflows.models import DeploymentInput, deployment_workflow_id
from workflows.worker import engine_worker


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--persist", action="store_true", help="dev server on a SQLite file")
    parser.add_argument("--sqlite-wal", action="store_true", help="with WAL + synchronous=normal")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        extra: list[str] = []
        if args.sqlite_wal:
            extra = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        env = await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=str(find_temporal_binary()),
            dev_server_database_filename=str(work / "temporal.db") if args.persist else None,
            dev_server_extra_args=extra,
        )
        (work / "targets.toml").write_text(
            sleeper_targets("bench", args.deployments), encoding="utf-8"
        )
        os.environ[TOKEN_ENV] = "bench-token"
        try:
            async with DiscordDouble() as double, await Storage.open(work / "db") as storage:
                double.add_bot(token="bench-token", username="bench")
                async with engine_worker(
                    env.client,
                    task_queue="bench",
                    storage=storage,
                    targets_file=work / "targets.toml",
                    data_dir=work,
                    discord_api_base=double.api_base,
                ):
                    client = DeploymentClient(env.client, "bench")
                    started = time.perf_counter()
                    base_ms = unix_ms()
                    ids = [
                        deployment_workflow_id(f"bench-{n}", base_ms)
                        for n in range(args.deployments)
                    ]
                    await asyncio.gather(
                        *(
                            client.start(
                                DeploymentInput(bot_name=f"bench-{n}", owner="b"), workflow_id=i
                            )
                            for n, i in enumerate(ids)
                        )
                    )
                    results = await asyncio.gather(*(client.result(i) for i in ids))
                    elapsed = time.perf_counter() - started
                    ok = sum(r.success for r in results)
                    print(
                        f"{ok}/{len(ids)} deployments in {elapsed:.2f}s: "
                        f"{len(ids) / elapsed:.1f} deployments/s"
                    )
                    started = time.perf_counter()
                    semaphore = asyncio.Semaphore(16)

                    async def query(workflow_id: str) -> None:
                        async with semaphore:
                            await client.snapshot(workflow_id)

                    await asyncio.gather(*(query(ids[n % len(ids)]) for n in range(args.queries)))
                    elapsed = time.perf_counter() - started
                    print(
                        f"{args.queries} snapshots of closed deployments (describe + result) "
                        f"in {elapsed:.2f}s: {args.queries / elapsed:.0f}/s"
                    )
        finally:
            kill_release_processes(work)
            await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
