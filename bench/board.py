"""How fast the progress board brings many deployments in one channel to their final form
at Discord's real pace (5 edits per 5 s per channel), and how many 429s it draws.

    .venv/bin/python -m bench.board --deployments 100

Real parts: the Temporal dev server, a worker, shipcord's Discord front end (discord.py)
against the local Discord API double, which enforces the bucket and does not advertise
it (so only shipcord's own pacing avoids 429s), and real `sleep` releases.
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
from bot.client import ShipcordBot
from bot.config import FrontEndConfig
from shipcord.embedded_temporal import find_temporal_binary
from storage import Storage
from tests.discord_double import DiscordDouble
from tests.engine.harness import kill_release_processes
from workflows.client import DeploymentClient, DeploymentService
from workflows.models import DeploymentInput
from workflows.worker import engine_worker

BENCH_TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "1800"))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=30)
    args = parser.parse_args()
    count = args.deployments
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "targets.toml").write_text(sleeper_targets("board", count), encoding="utf-8")
        os.environ[TOKEN_ENV] = "bench-target-token"
        env = await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=str(find_temporal_binary()),
        )
        try:
            async with (
                DiscordDouble(advertise_ratelimits=False) as double,
                await Storage.open(work / "shipcord.db") as storage,
            ):
                founder = double.add_user("founder")
                guild = double.add_guild("Bench", owner_id=founder.id, channels=("deploys",))
                app = double.add_bot("bench-shipcord-token", "shipcord", guilds=[guild])
                double.add_bot("bench-target-token", "target")
                channel_id = guild.default_channel_id
                deployments = DeploymentClient(env.client, "board-bench")
                config = FrontEndConfig(
                    targets_file=work / "targets.toml",
                    api_base=double.api_base,
                    progress_interval=1.0,
                )
                async with engine_worker(
                    env.client,
                    task_queue="board-bench",
                    storage=storage,
                    targets_file=work / "targets.toml",
                    data_dir=work,
                    discord_api_base=double.api_base,
                ):
                    base_ms = time.time_ns() // 1_000_000
                    service = DeploymentService(deployments, storage, clock=lambda: base_ms)
                    bot = ShipcordBot(
                        config=config, service=service, storage=storage, guild_ready_timeout=0.2
                    )
                    runner = asyncio.create_task(bot.start("bench-shipcord-token"))
                    await double.wait_for_bot_ready(app, timeout=30)
                    started = time.perf_counter()
                    for n in range(count):
                        await service.start(
                            DeploymentInput(
                                bot_name=f"board-{n}",
                                owner=str(founder.id),
                                version="1.0.0",
                                guild_id=str(guild.id),
                                channel_id=str(channel_id),
                            )
                        )

                    def finished() -> int:
                        return sum(
                            1
                            for m in double.messages(channel_id)
                            if "State: succeeded" in m.content and not m.components
                        )

                    try:
                        await double.wait_for(
                            lambda: finished() == count, BENCH_TIMEOUT, "all final"
                        )
                    except TimeoutError:
                        for m in double.messages(channel_id):
                            print("MESSAGE", m.content.replace("\n", " | ")[:200])
                        raise
                    elapsed = time.perf_counter() - started
                    writes = double.requests_matching(None, rf"/channels/{channel_id}/messages")
                    print(
                        f"{count} deployments in one channel: all final after {elapsed:.0f}s; "
                        f"{len(writes)} posts and edits; {double.rate_limited_count} x 429"
                    )
                    await bot.close()
                    await asyncio.gather(runner, return_exceptions=True)
        finally:
            kill_release_processes(work)
            await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
