"""Discord's bad minutes: whatever it answers for a while, every message ends in its final
form, once, and failures are told once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.harness import wait_until
from tests.test_bot.conftest import FAILERS, Front, notices_for, progress_messages, shown

RATE_LIMITED = {"message": "You are being rate limited.", "retry_after": 1.0, "global": False}


def writes_about(front: Front, workflow_id: str) -> int:
    """Requests that create or edit a message showing `workflow_id`."""
    return sum(
        1
        for request in front.double.requests
        if request.method in ("POST", "PATCH") and workflow_id in str(request.json)
    )


# discord.py itself retries a 5xx five times, 1 + 2n seconds apart, before shipcord's
# own next try: a long burst takes that long to ride out.
RIDE_OUT = 90.0


def controls(message: Any) -> list[str]:
    """The message's buttons that act on a running deployment (Show log may stay)."""
    return [
        component.get("custom_id", "")
        for row in message.components
        for component in row.get("components", [])
        if not component.get("custom_id", "").startswith("shipcord:log:")
    ]


async def assert_final_and_quiet(front: Front, message: Any, workflow_id: str, *words: str) -> None:
    await front.double.wait_for(
        lambda: all(word in shown(message) for word in words) and not controls(message),
        RIDE_OUT,
        f"the final form of {workflow_id}",
    )
    assert len(progress_messages(front.double, front.world.channel_id, workflow_id)) == 1

    async def final() -> bool:
        record = await front.engine.storage.get_deployment(workflow_id)
        return record is not None and record.message_final

    await wait_until(final, timeout=RIDE_OUT, what="the message recorded as final")
    writes = writes_about(front, workflow_id)
    await front.more_board_passes(4)
    assert writes_about(front, workflow_id) == writes, "nothing is sent after the final form"


async def test_a_429_storm_on_the_last_edit_still_ends_deployed(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-12", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Running health check**")
    # More 429s than discord.py retries on its own: shipcord has to try again itself.
    storm = front.double.inject_fault(
        "PATCH", r"^/webhooks/", status=429, times=8, body=RATE_LIMITED
    )
    front.let_finish("sleeper-12")
    await assert_final_and_quiet(front, message, workflow_id, "State: succeeded")
    # discord.py's own tries on the webhook, then the channel's route took the edit.
    assert storm.hits >= 5
    channel_edits = front.double.requests_matching(
        "PATCH", rf"^/channels/\d+/messages/{message.id}$"
    )
    assert any(request.status == 200 for request in channel_edits)


async def test_server_errors_on_the_last_edit_still_end_deployed(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-13", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Running health check**")
    burst = front.double.inject_fault("PATCH", r"^/(webhooks|channels)/", status=502, times=7)
    front.let_finish("sleeper-13")
    await assert_final_and_quiet(front, message, workflow_id, "State: succeeded")
    assert burst.exhausted


async def test_a_429_storm_on_the_notices_tells_the_failure_once(front: Front) -> None:
    world = front.world
    storm = front.double.inject_fault(
        "POST", r"^/channels/\d+/messages$", status=429, times=8, body=RATE_LIMITED
    )
    workflow_id = await front.deploy(FAILERS[7], user=world.owner)
    message = await front.progress_message(workflow_id)
    await assert_final_and_quiet(front, message, workflow_id, "State: failed")
    assert storm.exhausted
    assert len(notices_for(front.double, world.channel_id, workflow_id)) == 1
    dms = [m for m in front.double.dm_messages(world.owner) if workflow_id in m.content]
    assert len(dms) == 1


async def test_429s_on_the_deploy_answer_still_answer_in_public(front: Front) -> None:
    world = front.world
    brief = {**RATE_LIMITED, "retry_after": 0.2}
    front.double.inject_fault("POST", r"^/interactions/", status=429, times=2, body=brief)
    workflow_id = await front.deploy("sleeper-16", user=world.owner)
    message = await front.progress_message(workflow_id)
    front.let_finish("sleeper-16")
    await assert_final_and_quiet(front, message, workflow_id, "State: succeeded")


async def test_a_global_429_storm_in_the_middle_still_ends_deployed(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-17", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Running health check**")
    storm = {**RATE_LIMITED, "global": True}
    front.double.inject_fault("*", r"^/(webhooks|channels)/", status=429, times=8, body=storm)
    front.let_finish("sleeper-17")
    await assert_final_and_quiet(front, message, workflow_id, "State: succeeded")


async def test_a_rest_outage_while_a_deployment_fails_tells_it_once(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy(FAILERS[8], user=world.owner)
    message = await front.progress_message(workflow_id)
    outage = front.double.inject_fault("*", r".", status=503, times=None)
    try:
        # The outage lasts until the deployment has failed in Temporal, whatever that takes.
        result = await front.engine.deployments.result(workflow_id)
        assert not result.success
        await front.more_board_passes(3)
    finally:
        front.double.clear_faults()
    assert outage.hits > 0
    await assert_final_and_quiet(front, message, workflow_id, "State: failed")
    assert len(notices_for(front.double, world.channel_id, workflow_id)) == 1
    dms = [m for m in front.double.dm_messages(world.owner) if workflow_id in m.content]
    assert len(dms) == 1


@pytest.mark.parametrize(("bot_name", "resumable"), [("sleeper-18", True), ("sleeper-19", False)])
async def test_a_dropped_gateway_during_a_deployment_and_a_click(
    front: Front, bot_name: str, resumable: bool
) -> None:
    world = front.world
    workflow_id = await front.deploy(bot_name, user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Running health check**")
    await front.double.disconnect_bot(world.app, resumable=resumable)
    await front.double.wait_for_bot_ready(world.app, timeout=30)
    paused = await front.click(message, "pause", user=world.owner)
    assert paused.startswith(("Paused", "Pausing")), paused
    await front.wait_for_text(message, "State: paused")
    await front.double.disconnect_bot(world.app, resumable=resumable)
    await front.double.wait_for_bot_ready(world.app, timeout=30)
    resumed = await front.command("resume", {"deployment": workflow_id}, user=world.owner)
    assert resumed.startswith(("Resumed", "Resuming")), resumed
    front.let_finish(bot_name)
    await assert_final_and_quiet(front, message, workflow_id, "State: succeeded")
