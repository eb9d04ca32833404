"""What users see when Temporal is down or the bot may not write in the channel."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.test_bot.conftest import Front
from workflows.client import DeploymentClient, DeploymentService


async def test_temporal_unreachable_is_a_short_answer_and_locks_nothing(front: Front) -> None:
    world = front.world
    working = front.bot.service
    # A real client, pointed at a port where no Temporal server listens.
    nowhere = await Client.connect("127.0.0.1:1", lazy=True, data_converter=pydantic_data_converter)
    front.bot.service = DeploymentService(
        DeploymentClient(nowhere, front.engine.task_queue), front.engine.storage
    )
    try:
        answer = await front.command(
            "deploy", {"bot": "sleeper-11", "version": "1.0.0"}, user=world.owner
        )
        assert "Temporal is unreachable" in answer and "Traceback" not in answer
    finally:
        front.bot.service = working
    rows = await front.engine.storage.list_deployments(limit=100)
    assert [row for row in rows if row.bot_name == "sleeper-11"] == []
    # The failed start did not leave the bot locked: a deploy now goes through.
    workflow_id = await front.deploy("sleeper-11", user=world.owner)
    front.let_finish("sleeper-11")
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "State: succeeded")


async def test_a_channel_the_bot_cannot_write_to_is_skipped_not_retried(front: Front) -> None:
    world = front.world
    locked = front.double.add_channel(world.guild.id, "locked", deny_bots=True)
    answer = await front.command(
        "deploy", {"bot": "sleeper-0", "version": "1.0.0"}, user=world.owner, channel=locked.id
    )
    assert answer.startswith("Deploying") and "cannot post in this channel" in answer
    workflow_id = answer.split("`")[3]
    await front.more_board_passes(5)
    posts = front.double.requests_matching("POST", rf"/channels/{locked.id}/messages$")
    assert len(posts) == 1, "one refused attempt, then the channel is skipped"
    front.let_finish("sleeper-0")
    result = await front.engine.deployments.result(workflow_id)
    assert result.success
    await front.more_board_passes(3)
    assert len(front.double.requests_matching("POST", rf"/channels/{locked.id}/messages$")) == 1
