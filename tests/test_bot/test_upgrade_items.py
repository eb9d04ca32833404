"""What an upgrade leaves behind never breaks the rest: a deployment whose status cannot
be read beside a good one in /status, a workflow terminated in Temporal shown as such."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.test_bot.conftest import Front, shown
from workflows.deployment_client import unix_ms
from workflows.models import STATUS_QUERY, WORKFLOW_NAME, deployment_workflow_id

GOOD = "sleeper-14"
TERMINATED = "sleeper-15"
GARBLED = "load-099"


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class GarbledDeployment:
    """A workflow under the deployment's name whose status no shipcord can decode (what a
    worker of another version, or another program, could answer)."""

    @workflow.run
    async def run(self, _: Any) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> dict[str, Any]:
        return {"state": "exploded", "progress": "a lot"}


@asynccontextmanager
async def garbled_deployment(client: Client) -> AsyncIterator[str]:
    task_queue = f"garbled-{uuid.uuid4().hex[:8]}"
    workflow_id = deployment_workflow_id(GARBLED, unix_ms())
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GarbledDeployment],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            WORKFLOW_NAME,
            {"botName": GARBLED, "owner": "someone"},
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=5),
        )
        try:
            yield workflow_id
        finally:
            await handle.terminate("test over")


async def test_status_lists_the_others_when_one_cannot_be_read(front: Front) -> None:
    world = front.world
    good = await front.deploy(GOOD, "1.0.0", user=world.owner)
    message = await front.progress_message(good)
    async with garbled_deployment(front.engine.client) as garbled:
        await front.engine.storage.reserve_deployment(
            workflow_id=garbled,
            bot_name=GARBLED,
            version="1.0.0",
            owner_id=str(world.owner.id),
            guild_id=str(world.guild.id),
            channel_id=str(world.channel_id),
        )
        passes = front.bot.board.passes
        listing = await front.command("status", user=world.owner)
        lines = {line.split("`")[1]: line for line in listing.splitlines() if line.startswith("`")}
        assert "cannot be read" in lines[garbled], listing
        assert f"**{GOOD}** `1.0.0` — " in lines[good] and "%` running" in lines[good], listing
        assert "cannot be read" not in lines[good]
        # The board's passes go on too.
        await front.more_board_passes(3)
        assert front.bot.board.passes >= passes + 3
    front.let_finish(GOOD)
    await front.wait_for_text(message, "State: succeeded")


async def test_a_workflow_terminated_in_temporal_says_so_at_the_step_where_it_stopped(
    front: Front,
) -> None:
    world = front.world
    workflow_id = await front.deploy(TERMINATED, "3.0.0", user=world.owner)
    message = await front.progress_message(workflow_id)
    # Held at the health check (its gate stays shut): release #1 runs.
    await front.wait_for_text(message, "**Running health check** — 85%", "Release: #1")
    handle = front.engine.client.get_workflow_handle(workflow_id)
    await handle.terminate(reason="operator stopped it")
    await front.wait_for_text(message, "Terminated in Temporal")
    text = shown(message)
    assert "**Terminated in Temporal** at running health check — 85%" in text, text
    assert "operator stopped it" in text, text
    assert "Release: #1" in text
    assert "No rollback ran (terminated in Temporal). Release #1 had been created." in text
    assert "Nothing had been deployed" not in text and "ended as failed" not in text
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None and not record.is_open and record.state == "failed"
    detail = await front.command("status", {"deployment": workflow_id}, user=world.owner)
    assert "**Terminated in Temporal** at running health check — 85%" in detail, detail
    assert "Release #1 had been created" in detail
