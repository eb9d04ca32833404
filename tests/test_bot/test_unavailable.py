"""What users see when Temporal is down or the bot may not write in the channel."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.engine.harness import wait_until
from tests.test_bot.conftest import WAIT, Front, progress_messages
from workflows.deployment_client import DeploymentClient, unix_ms
from workflows.deployment_service import DeploymentService
from workflows.models import DeploymentInput, deployment_workflow_id


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
    # Accepted first (its public answer went out at once), then retracted: nothing public
    # of that refusal is left in the channel.
    assert not [
        m
        for m in front.double.messages(world.channel_id)
        if "sleeper-11" in m.content and not m.ephemeral
    ]
    rows = await front.engine.storage.list_deployments(limit=100)
    assert [row for row in rows if row.bot_name == "sleeper-11"] == []
    # The failed start did not leave the bot locked: a deploy now goes through.
    workflow_id = await front.deploy("sleeper-11", user=world.owner)
    front.let_finish("sleeper-11")
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "State: succeeded")


async def test_a_channel_the_bot_cannot_write_to_is_skipped_not_retried(front: Front) -> None:
    """/deploy's answer needs no permission to post, so it shows there all the same; a
    deployment another client starts for that channel is refused once, then skipped."""
    world = front.world
    locked = front.double.add_channel(world.guild.id, "locked", deny_bots=True)
    answer = await front.command(
        "deploy", {"bot": "sleeper-0", "version": "1.0.0"}, user=world.owner, channel=locked.id
    )
    assert answer.startswith("Deploying")
    workflow_id = answer.split("`")[3]
    [message] = progress_messages(front.double, locked.id, workflow_id)
    front.let_finish("sleeper-0")
    await front.wait_for_text(message, "State: succeeded")
    assert front.double.requests_matching("POST", rf"/channels/{locked.id}/messages$") == []

    elsewhere = deployment_workflow_id("quick-0", unix_ms())
    await front.engine.deployments.start(
        DeploymentInput(
            bot_name="quick-0",
            owner=str(world.owner.id),
            guild_id=str(world.guild.id),
            channel_id=str(locked.id),
        ),
        workflow_id=elsewhere,
    )
    assert (await front.engine.deployments.result(elsewhere)).success

    async def finalised() -> bool:
        record = await front.engine.storage.get_deployment(elsewhere)
        return record is not None and record.message_final

    await wait_until(finalised, timeout=WAIT, what="the other client's deployment to be done")
    posts = front.double.requests_matching("POST", rf"/channels/{locked.id}/messages$")
    assert [post.status for post in posts] == [403], "one refused attempt, then skipped"
    await front.more_board_passes(3)
    assert len(front.double.requests_matching("POST", rf"/channels/{locked.id}/messages$")) == 1
