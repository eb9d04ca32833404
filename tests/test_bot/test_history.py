"""/history through the real discord.py client: successes, a failure, a cancel and a
deployment another Temporal client started, newest first, in pages."""

from __future__ import annotations

from tests.engine.harness import wait_until
from tests.test_bot.conftest import FAILERS, QUICK_BOTS, SLEEPERS, WAIT, Front
from workflows.deployment_client import unix_ms
from workflows.models import DeploymentInput, deployment_workflow_id

BOT = QUICK_BOTS[5]


async def wait_closed(front: Front, workflow_id: str) -> None:
    async def closed() -> bool:
        record = await front.engine.storage.get_deployment(workflow_id)
        return record is not None and not record.is_open

    await wait_until(closed, timeout=WAIT, what=f"{workflow_id} to close")


async def test_history_lists_outcomes_newest_first_in_pages(front: Front) -> None:
    world = front.world
    ids = []
    for n in range(11):
        workflow_id = await front.deploy(BOT, f"1.0.{n}", user=world.owner)
        await wait_closed(front, workflow_id)
        ids.append(workflow_id)
    # Another client, with no server: only admins of the bot's server see it.
    external = deployment_workflow_id(BOT, unix_ms())
    await front.engine.deployments.start(
        DeploymentInput(bot_name=BOT, owner="ci-pipeline", version="2.0.0"), workflow_id=external
    )
    await wait_closed(front, external)

    first_page = await front.command("history", {"bot": BOT}, user=world.admin)
    assert first_page.startswith(f"Deployments of **{BOT}**, newest first (page 1 of 2)")
    lines = first_page.splitlines()[1:]
    assert len(lines) == 10
    assert lines[0].startswith("#12 `2.0.0` · ci")
    assert "✅ succeeded" in lines[0] and external in lines[0]
    assert lines[1].startswith("#11 `1.0.10`") and f"<@{world.owner.id}>" in lines[1]

    member_page = await front.command("history", {"bot": BOT}, user=world.stranger)
    assert external not in member_page and ids[-1] in member_page

    interaction = next(
        i
        for i in reversed(list(front.double.state.interactions.values()))
        if i.data.get("name") == "history"
    )
    reply = front.double.message(interaction.reply_message_id)
    older = next(
        c["custom_id"]
        for row in reply.components
        for c in row["components"]
        if c.get("label", "").startswith("Older")
    )
    click = await front.double.dispatch_component(world.app, reply.id, older, user=world.admin)
    await front.double.wait_for_interaction_reply(click.id, timeout=WAIT)
    await front.double.wait_for(
        lambda: "(page 2 of 2)" in front.double.message(reply.id).content, WAIT, "page 2"
    )
    assert ids[0] in front.double.message(reply.id).content


async def test_history_shows_failures_and_cancels(front: Front) -> None:
    world = front.world
    failed = await front.deploy(FAILERS[3], "1.0.0", user=world.owner)
    await wait_closed(front, failed)
    answer = await front.command("history", {"bot": FAILERS[3]}, user=world.owner)
    assert "❌ failed: Release 1 of" in answer
    cancelled = await front.deploy(SLEEPERS[11], "1.0.0", user=world.owner)
    await front.command("cancel", {"deployment": cancelled}, user=world.owner)
    await wait_closed(front, cancelled)
    answer = await front.command("history", {"bot": SLEEPERS[11]}, user=world.owner)
    assert "🛑 cancelled" in answer


async def test_history_of_a_bot_of_another_server_is_refused(front: Front) -> None:
    world = front.world
    answer = await front.command(
        "history",
        {"bot": BOT},
        user=world.unconfigured_member,
        channel=world.unconfigured_channel_id,
    )
    assert "not enabled in this server" in answer
