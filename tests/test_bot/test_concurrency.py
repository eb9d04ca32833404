"""Many /deploy at the same instant, through the real discord.py client and the double.

The deployment service's clock is frozen, so every request lands in the same millisecond:
exactly the case where ids `deploy-{bot}-{ms}` would collide if they were not made in one
place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.engine.harness import wait_until
from tests.test_bot.conftest import (
    QUICK_BOTS,
    SLEEPERS,
    WAIT,
    Engine,
    Front,
    HealthGate,
    World,
    deployers,
    shown,
    start_shipcord,
    stop_shipcord,
)
from workflows.deployment_client import unix_ms
from workflows.deployment_service import DeploymentService
from workflows.models import deployment_workflow_id

REQUESTS = 20


class FrozenClock:
    def __init__(self) -> None:
        self.millis = unix_ms()

    def __call__(self) -> int:
        return self.millis


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="module")
async def front(
    world: World, engine: Engine, health_gate: HealthGate, clock: FrozenClock
) -> AsyncIterator[Front]:
    service = DeploymentService(engine.deployments, engine.storage, clock=clock)
    bot = await start_shipcord(world, engine, service=service)
    front = Front(world=world, engine=engine, bot=bot, started=[bot], health_gate=health_gate)
    try:
        yield front
    finally:
        await stop_shipcord(front.bot)


async def test_twenty_deploys_of_one_bot_in_one_millisecond_start_exactly_one(
    front: Front, clock: FrozenClock
) -> None:
    bot_name = SLEEPERS[10]
    clock.millis = unix_ms()
    users = deployers(front, REQUESTS)
    answers = await asyncio.gather(
        *(
            front.command("deploy", {"bot": bot_name, "version": "1.0.0"}, user=user)
            for user in users
        )
    )
    started = [answer for answer in answers if answer.startswith("Deploying")]
    refused = [answer for answer in answers if "already has a deployment in progress" in answer]
    assert len(started) == 1, answers
    assert len(refused) == REQUESTS - 1, answers
    workflow_id = deployment_workflow_id(bot_name, clock.millis)
    assert f"`{workflow_id}`" in started[0]
    assert all(workflow_id in answer for answer in refused)

    rows = [
        r for r in await front.engine.storage.list_deployments(limit=200) if r.bot_name == bot_name
    ]
    assert [(r.workflow_id, r.is_open) for r in rows] == [(workflow_id, True)]
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Running health check** — 85%")
    # The lock holds for as long as the deployment is open.
    later = await front.command("deploy", {"bot": bot_name, "version": "2.0.0"}, user=users[0])
    assert "already has a deployment in progress" in later
    status = await front.engine.deployments.status(workflow_id)
    assert status.state.value == "running"

    front.let_finish(bot_name)
    await front.wait_for_text(message, "State: succeeded")
    messages = [m for m in front.double.messages(front.world.channel_id) if workflow_id in shown(m)]
    assert len([m for m in messages if not m.ephemeral and m.message_reference is None]) == 1


async def test_deploys_of_two_bots_in_one_millisecond_both_start(
    front: Front, clock: FrozenClock
) -> None:
    clock.millis = unix_ms()
    first, second = QUICK_BOTS[0], QUICK_BOTS[1]
    alice, bob = deployers(front, 2)
    answers = await asyncio.gather(
        front.command("deploy", {"bot": first, "version": "1.0.0"}, user=alice),
        front.command("deploy", {"bot": second, "version": "1.0.0"}, user=bob),
    )
    ids = [deployment_workflow_id(name, clock.millis) for name in (first, second)]
    assert [answer.startswith("Deploying") for answer in answers] == [True, True], answers
    for workflow_id in ids:
        await closed(front, workflow_id)

    # The same bot again, still in that millisecond: the next free id, not the closed one's.
    again = await front.command("deploy", {"bot": first, "version": "1.0.1"}, user=alice)
    assert f"`{deployment_workflow_id(first, clock.millis + 1)}`" in again
    await closed(front, deployment_workflow_id(first, clock.millis + 1))


async def closed(front: Front, workflow_id: str) -> None:
    """Wait until the front end has recorded the deployment's end (the bot is free again)."""

    async def is_closed() -> bool:
        record = await front.engine.storage.get_deployment(workflow_id)
        return record is not None and not record.is_open

    await wait_until(is_closed, timeout=WAIT, what=f"{workflow_id} to close")
