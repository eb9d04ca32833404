"""What supervision does reaches the owner once: a crashing bot restarted, then given up
on (crash loop), told in the bot's channel and, for the crash loop, by DM."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_bot.conftest import FLAKY_BOTS, WAIT, Front
from workflows.supervision_rounds import SupervisionSettings

SUPERVISION = SupervisionSettings(
    interval_seconds=0.3, restart_limit=2, restart_window_seconds=600, max_backoff_seconds=0.3
)


@pytest.fixture(scope="module")
def engine_options() -> dict[str, Any]:
    return {"supervision": SUPERVISION}


def incident_messages(front: Front, needle: str) -> list[str]:
    return [
        message.content
        for message in front.double.messages(front.world.channel_id)
        if needle in message.content and "**" + FLAKY_BOTS[0] + "**" in message.content
    ]


async def test_restarts_and_a_crash_loop_are_told_once_each(front: Front) -> None:
    world = front.world
    workflow_id = await front.deploy(FLAKY_BOTS[0], "1.0.0", user=world.owner)
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "State: succeeded")
    await front.double.wait_for(
        lambda: incident_messages(front, "keeps stopping"), 60, "the crash-loop notice"
    )
    restarts = incident_messages(front, "started again")
    assert len(restarts) == SUPERVISION.restart_limit
    assert all(text.startswith(f"🔁 <@{world.owner.id}>") for text in restarts)
    dms = await front.double.wait_for(
        lambda: [m for m in front.double.dm_messages(world.owner) if "keeps stopping" in m.content],
        WAIT,
        "the crash-loop DM",
    )
    assert len(dms) == 1 and "DOWN" in dms[0].content
    # Nothing is told twice, whatever more rounds and notice passes run.
    await front.more_board_passes(10)
    assert len(incident_messages(front, "keeps stopping")) == 1
    assert len(incident_messages(front, "started again")) == SUPERVISION.restart_limit
    listing = await front.command("status", user=world.stranger)
    assert "Recent incidents" in listing and "keeps stopping" in listing
