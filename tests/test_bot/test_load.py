"""100 open deployments in one channel: every message converges, the double never says 429.

The channel's buckets are scaled in time (20 per 1 s instead of 5 per 5 s) on both sides
so the test runs in seconds; the pacer is the same code that keeps to 5 per 5 s in
production. The double does not advertise its limits here, so discord.py cannot pace
itself: only shipcord's pacers stand between the board and a 429.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.test_bot.conftest import LOAD_BOTS, Front, shown
from workflows.deployment_service import DeploymentService
from workflows.models import DeploymentInput, deployment_workflow_id

LIMIT, WINDOW = 20, 1.0


@pytest.fixture(scope="module")
def double_options() -> dict[str, Any]:
    return {
        "edit_limit": LIMIT,
        "edit_window": WINDOW,
        "send_limit": LIMIT,
        "send_window": WINDOW,
        "advertise_ratelimits": False,
        "interaction_deadline": 3.0,
    }


@pytest.fixture(scope="module")
def shipcord_options() -> dict[str, Any]:
    return {"edit_limit": LIMIT, "edit_window": WINDOW}


async def test_hundred_deployments_in_one_channel_without_a_429(front: Front) -> None:
    world, storage, deployments = front.world, front.engine.storage, front.engine.deployments
    base_ms = time.time_ns() // 1_000_000
    # Every start in the same millisecond, as another client would start them: the board
    # posts their messages in the channel itself.
    service = DeploymentService(deployments, storage, clock=lambda: base_ms)
    workflow_ids = [deployment_workflow_id(name, base_ms) for name in LOAD_BOTS]

    async def start(name: str, workflow_id: str) -> None:
        request = DeploymentInput(
            bot_name=name,
            owner=str(world.owner.id),
            version="1.0.0",
            guild_id=str(world.guild.id),
            channel_id=str(world.channel_id),
        )
        record = await service.start(request)
        assert record.workflow_id == workflow_id
        await deployments.pause(workflow_id)

    await asyncio.gather(*(start(n, w) for n, w in zip(LOAD_BOTS, workflow_ids, strict=True)))

    def progress_messages() -> dict[str, Any]:
        found = {}
        for message in front.double.messages(world.channel_id):
            for workflow_id in workflow_ids:
                if f"`{workflow_id}`" in message.content and message.message_reference is None:
                    found[workflow_id] = message
        return found

    await front.double.wait_for(lambda: len(progress_messages()) == 100, 60, "100 messages")
    await asyncio.gather(*(deployments.resume(w) for w in workflow_ids))

    def all_final() -> bool:
        messages = progress_messages()
        return len(messages) == 100 and all(
            "State: succeeded" in shown(m) and not m.components for m in messages.values()
        )

    await front.double.wait_for(all_final, 90, "every message in its final form")
    assert front.double.rate_limited_count == 0
    assert len(progress_messages()) == 100  # one message each, never re-posted
    rows = await storage.list_open_deployments()
    assert rows == []
