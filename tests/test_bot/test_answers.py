"""/deploy answers with the progress message itself, edited through the interaction.

The double models Discord's buckets (an interaction's webhook per token, channel messages
per channel) and does not announce them here, so only shipcord's own pacing keeps the
429 counter at zero.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

from bot.board.cards import COLOURS
from bot.deployments import deploy_answer
from bot.interactions.interaction_replies import InteractionReplies
from tests.discord_double import MessageRecord
from tests.engine.harness import wait_until
from tests.test_bot.conftest import (
    LOAD_BOTS,
    WAIT,
    Front,
    deployers,
    progress_messages,
    shown,
    start_shipcord,
    stop_shipcord,
)


@pytest.fixture(scope="module")
def double_options() -> dict[str, Any]:
    return {"interaction_deadline": 3.0, "advertise_ratelimits": False}


def webhook_edits(front: Front, message: MessageRecord) -> list[Any]:
    """The edits of an interaction's message through its webhook (@original or by id)."""
    record = front.double.interaction(message.interaction_id)
    return [
        request
        for request in front.double.requests_matching("PATCH", r"^/webhooks/")
        if record.token in request.path
    ]


def channel_edits(front: Front, message: MessageRecord) -> list[Any]:
    return front.double.requests_matching("PATCH", rf"/channels/\d+/messages/{message.id}$")


def channel_posts(front: Front) -> list[Any]:
    return front.double.requests_matching("POST", rf"/channels/{front.world.channel_id}/messages$")


async def test_the_answer_is_the_progress_message_edited_through_the_interaction(
    front: Front,
) -> None:
    world = front.world
    posts_before = len(channel_posts(front))
    workflow_id = await front.deploy("sleeper-0", "2.0.0", user=world.owner)
    message = await front.progress_message(workflow_id)
    interaction = front.double.interaction(message.interaction_id)
    assert interaction.original_message_id == message.id, "the interaction's own response"
    assert interaction.callback_type == 4 and not message.ephemeral
    assert message.embeds and message.components, "an embed, and the buttons"
    assert message.embeds[0]["color"] == COLOURS["running"]
    await front.wait_for_text(message, "**Running health check** — 85%")
    front.let_finish("sleeper-0")
    await front.wait_for_text(message, "**Deployed** — 100%", "State: succeeded")
    await front.double.wait_for(lambda: not message.components, WAIT, "buttons removed")
    assert message.embeds[0]["color"] == COLOURS["succeeded"]
    assert "\n" not in message.content and workflow_id in message.content  # one line
    assert webhook_edits(front, message) and not channel_edits(front, message)
    assert len(channel_posts(front)) == posts_before, "nothing was posted in the channel"
    assert front.double.rate_limited_count == 0


async def test_thirty_people_deploying_in_one_channel_each_see_their_answer_at_once(
    front: Front,
) -> None:
    """The issue's case: every answer is an interaction response, so none waits for the
    channel's bucket; each message is then edited in its own interaction's bucket."""
    users = deployers(front, 30)
    bots = LOAD_BOTS[:30]
    answers = await asyncio.gather(
        *(
            front.command("deploy", {"bot": name, "version": "1.0.0"}, user=user)
            for name, user in zip(bots, users, strict=True)
        )
    )
    assert all(answer.startswith("Deploying") for answer in answers), answers
    ids = [answer.split("`")[3] for answer in answers]
    messages = [await front.progress_message(workflow_id) for workflow_id in ids]
    assert all(m.interaction_id is not None and not m.ephemeral for m in messages)

    def all_final() -> bool:
        return all("State: succeeded" in shown(m) and not m.components for m in messages)

    await front.double.wait_for(all_final, 60, "every message in its final form")
    assert front.double.rate_limited_count == 0
    assert not any(channel_edits(front, m) for m in messages)


async def test_a_fast_failure_shows_exactly_where_it_ended_and_what_was_undone(
    front: Front,
) -> None:
    world = front.world
    workflow_id = await front.deploy("failer-0", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Failed** at running health check — 85%")
    text = shown(message)
    assert "✅ Deploying to platform\n❌ **Running health check**\n⬜ Deployed" in text
    assert "✅ Stop the new release: Release #1 stopped." in text
    assert "✅ Restore the previous release: There was no previous release." in text
    assert message.embeds[0]["color"] == COLOURS["failed"]
    assert message.content.startswith("Failed to deploy **failer-0**")


async def test_after_the_token_expires_the_message_is_edited_in_the_channel(
    front: Front,
) -> None:
    world, engine = front.world, front.engine
    await stop_shipcord(front.bot)
    replies = InteractionReplies(lifetime=timedelta(seconds=3), margin=timedelta(seconds=1))
    front.bot = await start_shipcord(world, engine, interaction_replies=replies)
    front.started.append(front.bot)
    try:
        workflow_id = await front.deploy("sleeper-1", user=world.owner)
        message = await front.progress_message(workflow_id)
        await front.wait_for_text(message, "**Running health check** — 85%")
        assert webhook_edits(front, message) and not channel_edits(front, message)

        async def token_retired() -> bool:
            return replies.get(workflow_id) is None

        await wait_until(token_retired, timeout=WAIT, what="the token to be retired")
        paused = await front.command("pause", {"deployment": workflow_id}, user=world.owner)
        assert paused.startswith("Paused")
        await front.wait_for_text(message, "State: paused")
        assert channel_edits(front, message), "edited as a channel message"
        await front.command("resume", {"deployment": workflow_id}, user=world.owner)
        front.let_finish("sleeper-1")
        await front.wait_for_text(message, "State: succeeded")
        assert progress_messages(front.double, world.channel_id, workflow_id) == [message]
        assert front.double.rate_limited_count == 0
    finally:
        await front.restart()


async def test_a_slow_start_is_acknowledged_privately_then_answered_in_public(
    front: Front, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = front.world
    monkeypatch.setattr(deploy_answer, "ANSWER_GUARD", 0.0)  # as if Temporal were slow
    record = await front.double.dispatch_command(
        world.app, "deploy", {"bot": "sleeper-2", "version": "1.0.0"}, user=world.owner
    )
    await front.double.wait_for(
        lambda: len(record.followup_message_ids) == 2, WAIT, "the private and the public answer"
    )
    private, public = (front.double.message(m) for m in record.followup_message_ids)
    assert record.callback_type == 5 and private.ephemeral
    assert "its progress follows in this channel" in private.content
    assert not public.ephemeral and public.embeds
    workflow_id = public.content.split("`")[3]
    assert workflow_id in private.content
    front.let_finish("sleeper-2")
    await front.wait_for_text(public, "State: succeeded")
    assert webhook_edits(front, public) and not channel_edits(front, public)


async def test_interaction_tokens_are_never_logged_nor_stored(
    front: Front, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    world = front.world
    caplog.set_level(logging.DEBUG)  # discord.py logs URLs and gateway payloads at DEBUG
    workflow_id = await front.deploy("sleeper-3", user=world.owner)
    message = await front.progress_message(workflow_id)
    front.let_finish("sleeper-3")
    await front.wait_for_text(message, "State: succeeded")
    token = front.double.interaction(message.interaction_id).token
    assert any("/webhooks/" in record.getMessage() for record in caplog.records)
    assert all(token not in record.getMessage() for record in caplog.records)
    assert token not in capsys.readouterr().out
    database = front.engine.data_dir / "shipcord.db"
    for path in (database, database.with_name("shipcord.db-wal")):
        if path.exists():
            assert token.encode() not in path.read_bytes()


async def test_an_answer_sent_but_not_recorded_before_a_crash_is_found_again(
    front: Front,
) -> None:
    import aiosqlite

    world = front.world
    workflow_id = await front.deploy("sleeper-4", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Running health check** — 85%")
    await front.bot.close()
    # As if shipcord had died after answering, before it stored the answer's id.
    async with aiosqlite.connect(front.engine.data_dir / "shipcord.db") as raw:
        await raw.execute(
            "UPDATE deployments SET message_id = NULL WHERE workflow_id = ?", (workflow_id,)
        )
        await raw.commit()
    await front.restart()
    front.let_finish("sleeper-4")
    await front.wait_for_text(message, "State: succeeded")
    assert progress_messages(front.double, world.channel_id, workflow_id) == [message]
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None and record.message_id == str(message.id)


async def test_a_refusal_that_comes_after_the_answer_takes_it_back(
    front: Front, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal slower than the patience, then refusing: the public answer is deleted
    before the private refusal, and the bot is not left locked."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    from workflows.deployment_client import DeploymentClient
    from workflows.deployment_service import DeploymentService

    world = front.world
    monkeypatch.setattr(deploy_answer, "START_PATIENCE", 0.0)
    nowhere = await Client.connect("127.0.0.1:1", lazy=True, data_converter=pydantic_data_converter)
    working = front.bot.service
    front.bot.service = DeploymentService(
        DeploymentClient(nowhere, front.engine.task_queue), front.engine.storage
    )
    try:
        record = await front.double.dispatch_command(
            world.app, "deploy", {"bot": "sleeper-5", "version": "1.0.0"}, user=world.owner
        )
        await front.double.wait_for(
            lambda: record.followup_message_ids, WAIT, "the private refusal"
        )
    finally:
        front.bot.service = working
    public = front.double.message(record.original_message_id)
    refusal = front.double.message(record.followup_message_ids[0])
    assert public.deleted and not public.ephemeral
    assert refusal.ephemeral and "Temporal is unreachable" in refusal.content
    assert not [m for m in front.double.messages(world.channel_id) if "sleeper-5" in m.content]
    rows = await front.engine.storage.list_open_deployments()
    assert [row for row in rows if row.bot_name == "sleeper-5"] == []
