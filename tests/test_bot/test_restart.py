"""shipcord restarts mid-deployment: the same message is edited to the end, one notice."""

from __future__ import annotations

from tests.engine.harness import wait_until
from tests.test_bot.conftest import WAIT, Front, notices_for, shown


async def test_restart_mid_deployment_keeps_editing_the_same_message(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-9", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Running health check** — 85%")
    await front.restart()
    front.let_finish("sleeper-9")
    await front.wait_for_text(message, "**Deployed** — 100%", "State: succeeded")
    await front.double.wait_for(lambda: not message.components, 10, "buttons removed")
    progress_messages = [
        m
        for m in front.double.messages(world.channel_id)
        if workflow_id in shown(m) and not m.ephemeral and m.message_reference is None
    ]
    assert progress_messages == [message]


async def test_failure_while_shipcord_is_down_is_notified_once(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("failer-1", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.bot.close()  # down while the deployment fails and rolls back
    result = await front.engine.deployments.result(workflow_id)
    assert not result.success
    await front.restart()
    await front.wait_for_text(message, "**Failed**", "State: failed")
    await front.double.wait_for(
        lambda: notices_for(front.double, world.channel_id, workflow_id), WAIT, "the notice"
    )
    await front.double.wait_for(
        lambda: [m for m in front.double.dm_messages(world.owner) if workflow_id in m.content],
        WAIT,
        "the DM",
    )
    # Another restart changes nothing: the notification was claimed.
    await front.restart()
    await front.more_board_passes(3)
    assert len(notices_for(front.double, world.channel_id, workflow_id)) == 1
    assert len([m for m in front.double.dm_messages(world.owner) if workflow_id in m.content]) == 1


async def test_deleted_progress_message_is_posted_again(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-10", user=world.owner)
    message = await front.progress_message(workflow_id)
    front.double.state.delete_message(message)
    reposted = await front.double.wait_for(
        lambda: [
            m
            for m in front.double.messages(world.channel_id)
            if workflow_id in shown(m)
            and not m.ephemeral
            and m.id != message.id
            and m.message_reference is None
        ],
        WAIT,
        "a new progress message",
    )
    front.let_finish("sleeper-10")
    await front.wait_for_text(reposted[0], "State: succeeded")
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None and record.message_id == str(reposted[0].id)


async def test_a_crash_between_notifying_and_recording_it_does_not_notify_twice(
    front: Front,
) -> None:
    import aiosqlite

    world = front.world
    workflow_id = await front.deploy("failer-2", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Failed**", "State: failed")
    await wait_until_notified(front, workflow_id)
    await front.bot.close()
    # As if shipcord had died after sending, before it recorded the notification as sent.
    async with aiosqlite.connect(front.engine.data_dir / "shipcord.db") as raw:
        await raw.execute(
            "UPDATE deployments SET notified = 0, message_final = 0 WHERE workflow_id = ?",
            (workflow_id,),
        )
        await raw.commit()
    await front.restart()
    await wait_until_notified(front, workflow_id)
    # Sent again with the same nonces, which Discord (and the double) de-duplicate.
    resent = front.double.requests_matching("POST", r"/channels/\d+/messages$")
    assert len([r for r in resent if r.json and workflow_id in str(r.json.get("content"))]) >= 4
    assert len(notices_for(front.double, world.channel_id, workflow_id)) == 1
    assert len([m for m in front.double.dm_messages(world.owner) if workflow_id in m.content]) == 1


async def wait_until_notified(front: Front, workflow_id: str) -> None:
    async def notified() -> bool:
        record = await front.engine.storage.get_deployment(workflow_id)
        return record is not None and record.notified

    await wait_until(notified, timeout=WAIT, what="the notification to be recorded")
