"""Deployments that other Temporal clients start are untrusted input: shown only where the
bot belongs, read one by one, and never trusted with ids that do not fit a card."""

from __future__ import annotations

import time
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

from tests.engine.harness import wait_until
from tests.test_bot.conftest import FAILERS, QUICK_BOTS, Front, shown
from workflows.models import WORKFLOW_NAME

# Adoption is checked every few seconds; a valid deployment must not wait much longer.
ADOPTED_WITHIN = 10.0


def unique_ms() -> int:
    unique_ms.last = max(time.time_ns() // 1_000_000, getattr(unique_ms, "last", 0) + 1)
    return unique_ms.last


async def start_elsewhere(front: Front, request: Any, *, workflow_id: str) -> None:
    """As the guide's clients do: a plain temporalio client, the default JSON converter."""
    await front.engine.client.start_workflow(
        WORKFLOW_NAME, request, id=workflow_id, task_queue=front.engine.task_queue
    )


async def finalised(front: Front, workflow_id: str) -> None:
    async def final() -> bool:
        record = await front.engine.storage.get_deployment(workflow_id)
        return record is not None and not record.is_open and record.message_final

    await wait_until(final, timeout=60, what=f"{workflow_id} closed and final")


def mentions_anywhere(front: Front, channel_id: int, workflow_id: str) -> list[str]:
    return [
        shown(message)
        for message in front.double.messages(channel_id)
        if workflow_id in shown(message)
    ]


async def test_a_foreign_server_gets_no_card_and_its_member_no_dm(front: Front) -> None:
    world = front.world
    workflow_id = f"deploy-{FAILERS[6]}-{unique_ms()}"
    await start_elsewhere(
        front,
        {
            "botName": FAILERS[6],
            "owner": str(world.unconfigured_member.id),
            "guildId": str(world.unconfigured_guild.id),
            "channelId": str(world.unconfigured_channel_id),
        },
        workflow_id=workflow_id,
    )
    await finalised(front, workflow_id)
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None and (record.guild_id, record.channel_id) == (None, None)
    assert record.state == "failed"
    assert mentions_anywhere(front, world.unconfigured_channel_id, workflow_id) == []
    assert front.double.dm_messages(world.unconfigured_member) == []
    # The bot's admins still see it.
    status = await front.command("status", {"deployment": workflow_id}, user=world.admin)
    assert workflow_id in status


async def test_a_channel_of_another_server_is_not_used(front: Front) -> None:
    world = front.world
    workflow_id = f"deploy-{QUICK_BOTS[12]}-{unique_ms()}"
    await start_elsewhere(
        front,
        {
            "botName": QUICK_BOTS[12],
            "owner": str(world.owner.id),
            "guildId": str(world.guild.id),
            "channelId": str(world.unconfigured_channel_id),
        },
        workflow_id=workflow_id,
    )
    await finalised(front, workflow_id)
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None
    assert (record.guild_id, record.channel_id) == (str(world.guild.id), None)
    assert mentions_anywhere(front, world.unconfigured_channel_id, workflow_id) == []
    assert mentions_anywhere(front, world.channel_id, workflow_id) == []


async def test_unreadable_inputs_and_unfit_ids_hold_nobody_back(front: Front) -> None:
    world = front.world
    client = front.engine.client
    queue = front.engine.task_queue
    unreadable = [
        RawValue(Payload(metadata={"encoding": b"foo/bar"}, data=b"x")),
        # An input encrypted with a key this front end does not have.
        RawValue(Payload(metadata={"encoding": b"binary/encrypted"}, data=b"\x00" * 40)),
    ]
    skipped = []
    for number, raw in enumerate(unreadable):
        workflow_id = f"deploy-aaa{number}-{unique_ms()}"
        await client.start_workflow(WORKFLOW_NAME, raw, id=workflow_id, task_queue=queue)
        skipped.append(workflow_id)
    valid_request = {
        "botName": QUICK_BOTS[13],
        "owner": str(world.owner.id),
        "guildId": str(world.guild.id),
        "channelId": str(world.channel_id),
    }
    unfit_ids = [
        f"deploy-{QUICK_BOTS[14]}-{'9' * 125}",  # buttons' custom ids would pass 100
        f"deploy-{QUICK_BOTS[14]}-1` **@everyone** [x](https://evil.test) `",
        f"release-{QUICK_BOTS[14]}-{unique_ms()}",
        f"deploy-{QUICK_BOTS[15]}-{unique_ms()}",  # another bot's name
    ]
    for workflow_id in unfit_ids:
        request = {**valid_request, "botName": QUICK_BOTS[14]}
        await start_elsewhere(front, request, workflow_id=workflow_id)
        skipped.append(workflow_id)
    valid_id = f"deploy-{QUICK_BOTS[13]}-{unique_ms()}"
    started = time.monotonic()
    await start_elsewhere(front, valid_request, workflow_id=valid_id)

    await front.double.wait_for(
        lambda: mentions_anywhere(front, world.channel_id, valid_id),
        ADOPTED_WITHIN + 5,
        "the valid deployment's message",
    )
    assert time.monotonic() - started < ADOPTED_WITHIN + 5
    await finalised(front, valid_id)
    for workflow_id in skipped:
        assert await front.engine.storage.get_deployment(workflow_id) is None, workflow_id
    for message in front.double.messages(world.channel_id):
        assert "evil.test" not in shown(message)
        for row in message.components:
            for component in row.get("components", []):
                assert len(component.get("custom_id", "")) <= 100


async def test_another_clients_rollback_shows_the_version_it_puts_back(front: Front) -> None:
    world, bot = front.world, QUICK_BOTS[16]
    where = {"guildId": str(world.guild.id), "channelId": str(world.channel_id)}
    for version in ("1.0.0", "2.0.0"):
        workflow_id = f"deploy-{bot}-{unique_ms()}"
        request = {"botName": bot, "owner": str(world.owner.id), "version": version, **where}
        await start_elsewhere(front, request, workflow_id=workflow_id)
        await finalised(front, workflow_id)
    rollback_id = f"deploy-{bot}-{unique_ms()}"
    rollback = {"botName": bot, "owner": str(world.owner.id), "restoreRelease": 1, **where}
    await start_elsewhere(front, rollback, workflow_id=rollback_id)
    await finalised(front, rollback_id)

    record = await front.engine.storage.get_deployment(rollback_id)
    assert record is not None and record.version == "1.0.0", record.result
    [card] = [
        shown(message)
        for message in front.double.messages(world.channel_id)
        if f"`{rollback_id}`" in message.content and message.message_reference is None
    ]
    assert "`1.0.0`" in card and "latest" not in card, card
    history = await front.command("history", {"bot": bot}, user=world.admin)
    assert "#3 (rollback to #1)" in history and "latest" not in history, history
