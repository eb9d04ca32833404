"""Slash commands and buttons, end to end: double <-> discord.py <-> Temporal <-> SQLite."""

from __future__ import annotations

from tests.discord_double import MessageRecord
from tests.test_bot.conftest import WAIT, Front, notices_for, shown, shown_version


async def test_deploy_converges_to_100_percent_and_final_form(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("echo", "1.4.0", user=world.owner)
    message = await front.progress_message(workflow_id)
    assert message.components, "a running deployment shows its buttons"
    await front.double.wait_for(lambda: "State: running" not in shown(message), 60, "the end")
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None
    assert "**Deployed** — 100%" in shown(message), (record.error, shown(message))
    await front.double.wait_for(lambda: not message.components, 10, "buttons removed")
    assert "██████████ 100%" in shown(message)
    assert f"<@{world.owner.id}>" in shown(message)
    assert "`1.4.0`" in shown(message)
    assert "Release #1 is live." in shown(message)
    assert "http://temporal-ui.test/namespaces/default/workflows/" in shown(message)
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None and not record.is_open and record.state == "succeeded"
    assert record.message_id == str(message.id)
    # The same message was edited, never re-posted; and never more than needed.
    contents = [(shown_version(version), str(version.components)) for version in message.versions]
    assert len(contents) == len(set(contents)), "an edit that changed nothing was sent"


async def test_deploy_refusals_are_short_and_ephemeral(front: Front) -> None:
    world = front.world
    unknown = await front.command("deploy", {"bot": "nope", "version": "1.0"}, user=world.owner)
    assert "Unknown bot 'nope'" in unknown and "echo" in unknown
    malformed = await front.command(
        "deploy", {"bot": "sleeper-1", "version": "1.0; rm -rf /"}, user=world.owner
    )
    assert "is not well formed" in malformed
    workflow_id = await front.deploy("sleeper-1", user=world.owner)
    conflict = await front.command(
        "deploy", {"bot": "sleeper-1", "version": "2.0.0"}, user=world.admin
    )
    assert "already has a deployment in progress" in conflict and workflow_id in conflict
    for answer in (unknown, malformed, conflict):
        assert "Traceback" not in answer and len(answer) < 1500
    double = front.double
    deploys = [
        record
        for record in double.state.interactions.values()
        if record.data.get("name") == "deploy"
        and record.data["options"][0]["value"] in ("nope", "sleeper-1")
    ]
    answers = {record.id: double.message(record.reply_message_id) for record in deploys}
    accepted = [record for record in deploys if not answers[record.id].ephemeral]
    # Only the deployment that started answers in public (with its progress message);
    # the refusals are ephemeral, and nothing public was left behind for them.
    assert [workflow_id in shown(answers[r.id]) for r in accepted] == [True]
    for record in deploys:
        if record not in accepted:
            created = [record.original_message_id, *record.followup_message_ids]
            assert all(double.message(m).ephemeral for m in created if m is not None)
    message = await front.progress_message(workflow_id)
    front.let_finish("sleeper-1")
    await front.wait_for_text(message, "State: succeeded")


async def test_status_shows_one_deployment_or_the_open_ones(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-2", "2.1.0", user=world.owner)
    # Paused, it stays open for as long as the test looks at it.
    await front.command("pause", {"deployment": workflow_id}, user=world.owner)
    listing = await front.command("status", user=world.stranger)
    assert workflow_id in listing and "sleeper-2" in listing
    detail = await front.command("status", {"deployment": workflow_id}, user=world.stranger)
    assert workflow_id in detail and "`2.1.0`" in detail and f"<@{world.owner.id}>" in detail
    assert "%" in detail and "State:" in detail
    assert "http://temporal-ui.test/namespaces/default/workflows/" + workflow_id in detail
    elsewhere = await front.command(
        "status", {"deployment": workflow_id}, user=world.outsider, channel=world.other_channel_id
    )
    assert elsewhere == f"Unknown deployment `{workflow_id}` in this server."
    other_list = await front.command("status", user=world.outsider, channel=world.other_channel_id)
    assert workflow_id not in other_list
    message = await front.progress_message(workflow_id)
    await front.command("resume", {"deployment": workflow_id}, user=world.owner)
    front.let_finish("sleeper-2")
    await front.wait_for_text(message, "State: succeeded")
    finished = await front.command("status", {"deployment": workflow_id}, user=world.owner)
    assert "succeeded" in finished and "Deployed" in finished


def has_button(message: MessageRecord, custom_id: str) -> bool:
    return any(
        component.get("custom_id") == custom_id
        for row in message.components
        for component in row.get("components", [])
    )


async def test_pause_and_resume_by_command(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-3", user=world.owner)
    message = await front.progress_message(workflow_id)
    paused = await front.command("pause", {"deployment": workflow_id}, user=world.owner)
    assert paused.startswith(f"Paused `{workflow_id}`")
    await front.wait_for_text(message, "State: paused")
    again = await front.command("pause", {"deployment": workflow_id}, user=world.owner)
    assert again == f"`{workflow_id}` is already paused."
    resumed = await front.command("resume", {"deployment": workflow_id}, user=world.owner)
    assert resumed == f"Resumed `{workflow_id}`."
    front.let_finish("sleeper-3")
    await front.wait_for_text(message, "State: succeeded")
    not_paused = await front.command("resume", {"deployment": workflow_id}, user=world.owner)
    assert not_paused == f"`{workflow_id}` already finished: succeeded."


async def test_pause_and_resume_by_button(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-8", user=world.owner)
    message = await front.progress_message(workflow_id)
    assert has_button(message, f"shipcord:pause:{workflow_id}")
    assert has_button(message, f"shipcord:cancel:{workflow_id}")
    paused = await front.click(message, "pause", user=world.manager)  # Manage Server
    assert paused.startswith(f"Paused `{workflow_id}`")
    await front.wait_for_text(message, "State: paused")
    # The paused message offers Resume instead of Pause.
    await front.double.wait_for(
        lambda: has_button(message, f"shipcord:resume:{workflow_id}"), 10, "a Resume button"
    )
    resumed = await front.click(message, "resume", user=world.admin)  # the admin role
    assert resumed == f"Resumed `{workflow_id}`."
    front.let_finish("sleeper-8")
    await front.wait_for_text(message, "State: succeeded")
    too_late = await front.command("cancel", {"deployment": workflow_id}, user=world.owner)
    assert too_late == f"`{workflow_id}` already finished: succeeded."


async def test_strangers_and_other_servers_are_refused(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-4", user=world.owner)
    message = await front.progress_message(workflow_id)
    refused = await front.command("pause", {"deployment": workflow_id}, user=world.stranger)
    assert refused.startswith("Only the owner") and workflow_id in refused
    refused_click = await front.click(message, "cancel", user=world.stranger)
    assert refused_click.startswith("Only the owner")
    other = await front.command(
        "cancel", {"deployment": workflow_id}, user=world.owner, channel=world.other_channel_id
    )
    assert other == f"Unknown deployment `{workflow_id}` in this server."
    unknown = await front.command("resume", {"deployment": "deploy-x-1"}, user=world.owner)
    assert unknown == "Unknown deployment `deploy-x-1` in this server."
    status = await front.engine.deployments.status(workflow_id)
    assert status.state.value == "running", "nothing was paused or cancelled"
    front.let_finish("sleeper-4")
    await front.wait_for_text(message, "State: succeeded")


async def test_cancel_by_button_rolls_back_without_notification(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-5", user=world.owner)
    message = await front.progress_message(workflow_id)
    answer = await front.click(message, "cancel", user=world.owner)
    assert answer.startswith(f"Cancelling `{workflow_id}`")
    await front.wait_for_text(message, "**Cancelled**", "State: cancelled")
    await front.double.wait_for(lambda: not message.components, 10, "buttons removed")
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None and record.state == "cancelled" and not record.is_open
    await front.more_board_passes(3)
    assert notices_for(front.double, world.channel_id, workflow_id) == []
    assert not [m for m in front.double.dm_messages(world.owner) if workflow_id in m.content]


async def test_cancel_by_command(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("sleeper-6", user=world.owner)
    message = await front.progress_message(workflow_id)
    answer = await front.command("cancel", {"deployment": workflow_id}, user=world.admin)
    assert answer.startswith(f"Cancelling `{workflow_id}`")
    await front.wait_for_text(message, "State: cancelled")


async def test_failure_is_notified_once_in_channel_and_by_dm(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy("failer-0", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "**Failed**", "State: failed", "Error:")
    notice = await front.double.wait_for(
        lambda: notices_for(front.double, world.channel_id, workflow_id), WAIT, "the notice"
    )
    assert notice[0].content.startswith(f"<@{world.owner.id}>")
    assert notice[0].message_reference and int(notice[0].message_reference["message_id"]) == (
        message.id
    )
    dms = await front.double.wait_for(
        lambda: [m for m in front.double.dm_messages(world.owner) if workflow_id in m.content],
        WAIT,
        "the DM",
    )
    assert "Error:" in dms[0].content and "There was no previous release." in dms[0].content
    await front.more_board_passes(3)
    assert len(notices_for(front.double, world.channel_id, workflow_id)) == 1
    assert len([m for m in front.double.dm_messages(world.owner) if workflow_id in m.content]) == 1
    record = await front.engine.storage.get_deployment(workflow_id)
    assert record is not None and record.notified and record.state == "failed"


async def test_autocomplete(front: Front) -> None:
    world = front.world
    bots = await front.double.autocomplete(
        world.app, "deploy", {"bot": "sleep"}, focused="bot", user=world.owner
    )
    assert bots and all("sleep" in choice["value"] for choice in bots)
    assert len(bots) <= 25
    workflow_id = await front.deploy("sleeper-7", user=world.owner)
    await front.command("pause", {"deployment": workflow_id}, user=world.owner)
    mine = await front.double.autocomplete(
        world.app, "pause", {"deployment": ""}, focused="deployment", user=world.owner
    )
    assert workflow_id in [choice["value"] for choice in mine]
    theirs = await front.double.autocomplete(
        world.app, "pause", {"deployment": ""}, focused="deployment", user=world.stranger
    )
    assert workflow_id not in [choice["value"] for choice in theirs]
    message = await front.progress_message(workflow_id)
    await front.command("cancel", {"deployment": workflow_id}, user=world.owner)
    await front.wait_for_text(message, "State: cancelled")


async def test_deployments_started_elsewhere_get_a_message_in_its_final_form(
    front: Front,
) -> None:
    """Another Temporal client starts deployments that finish at once: shipcord finds them
    through Temporal's visibility and posts each message in its final form."""
    from tests.test_bot.conftest import QUICK_BOTS
    from workflows.deployment_client import unix_ms
    from workflows.models import DeploymentInput, deployment_workflow_id

    world = front.world
    base_ms = unix_ms()
    workflow_ids = []
    for name in QUICK_BOTS:
        workflow_id = deployment_workflow_id(name, base_ms)
        workflow_ids.append(workflow_id)
        await front.engine.deployments.start(
            DeploymentInput(
                bot_name=name,
                owner=str(world.owner.id),
                guild_id=str(world.guild.id),
                channel_id=str(world.channel_id),
            ),
            workflow_id=workflow_id,
        )

    def final_messages() -> list[str]:
        return [
            workflow_id
            for workflow_id in workflow_ids
            for message in front.double.messages(world.channel_id)
            if f"`{workflow_id}`" in shown(message)
            and message.message_reference is None
            and "State: succeeded" in shown(message)
            and not message.components
        ]

    await front.double.wait_for(
        lambda: sorted(final_messages()) == sorted(workflow_ids), 90, "every message final"
    )
    assert front.double.rate_limited_count == 0
    for workflow_id in workflow_ids:
        record = await front.engine.storage.get_deployment(workflow_id)
        assert record is not None and record.state == "succeeded" and not record.is_open
