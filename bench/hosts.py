"""Deployments per second with one host and with two hosts, in the same run.

    .venv/bin/python -m bench.hosts --deployments 40

One real Temporal dev server. First one host (a worker with its own SQLite and data
folder) deploys every bot; then, on a fresh task queue, two hosts deploy the same number
of bots, half pinned to each. Both hosts run in this process (one event loop, one CPU's
worth of Python), so the second figure shows what routing to host queues costs or gains,
not what a second machine adds. Each deployment is a full botDeploymentWorkflow: token
check against the local Discord double, SQLite records on its host, a real `sleep`
process started and health-checked.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.common import TOKEN_ENV
from shipcord.embedded_temporal import find_temporal_binary
from storage import Storage
from tests.discord_double import DiscordDouble
from tests.engine.harness import kill_release_processes
from workflows.deployment_client import DeploymentClient, unix_ms
from workflows.models import DeploymentInput, deployment_workflow_id
from workflows.worker import engine_worker


def pinned_targets(prefix: str, count: int, hosts: list[str]) -> str:
    """`count` sleeping bots, spread over `hosts` in turn."""
    return "".join(
        f'[bots.{prefix}-{n}]\ncommand = ["sleep", "600"]\ntoken_env = "{TOKEN_ENV}"\n'
        f'healthy_after = 0\nhost = "{hosts[n % len(hosts)]}"\n\n'
        for n in range(count)
    )


async def deploy_all(
    client: Client, work: Path, api_base: str, *, hosts: list[str], count: int
) -> float:
    """Deploy `count` bots over `hosts`; returns deployments per second."""
    label = f"h{len(hosts)}"
    queue = f"bench-{label}"
    targets = work / f"targets-{label}.toml"
    targets.write_text(pinned_targets(label, count, hosts), encoding="utf-8")
    async with AsyncExitStack() as stack:
        for host in hosts:
            # A client of its own, as a worker on another machine has: the SDK lets one
            # client run one worker per task queue.
            host_client = await Client.connect(
                client.service_client.config.target_host,
                namespace=client.namespace,
                data_converter=pydantic_data_converter,
            )
            data_dir = work / label / host
            storage = await stack.enter_async_context(await Storage.open(data_dir / "shipcord.db"))
            await stack.enter_async_context(
                engine_worker(
                    host_client,
                    task_queue=queue,
                    storage=storage,
                    targets_file=targets,
                    data_dir=data_dir,
                    discord_api_base=api_base,
                    host=host,
                )
            )
        deployments = DeploymentClient(client, queue)
        base_ms = unix_ms()
        ids = [deployment_workflow_id(f"{label}-{n}", base_ms) for n in range(count)]
        started = time.perf_counter()
        await asyncio.gather(
            *(
                deployments.start(
                    DeploymentInput(bot_name=f"{label}-{n}", owner="b"), workflow_id=workflow_id
                )
                for n, workflow_id in enumerate(ids)
            )
        )
        results = await asyncio.gather(*(deployments.result(i) for i in ids))
        elapsed = time.perf_counter() - started
        failed = [r.error for r in results if not r.success]
        if failed:
            raise SystemExit(f"{len(failed)} deployments failed, e.g. {failed[0]}")
        return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=str(find_temporal_binary()),
        )
        os.environ[TOKEN_ENV] = "bench-token"
        try:
            async with DiscordDouble() as double:
                double.add_bot(token="bench-token", username="bench")
                for hosts in (["one"], ["one", "two"]):
                    rate = await deploy_all(
                        env.client, work, double.api_base, hosts=hosts, count=args.deployments
                    )
                    print(
                        f"{len(hosts)} host{'s' if len(hosts) > 1 else ''}: "
                        f"{args.deployments} deployments, {rate:.1f} deployments/s"
                    )
                    kill_release_processes(work)
        finally:
            kill_release_processes(work)
            await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
