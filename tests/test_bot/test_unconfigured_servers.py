"""A server that adds shipcord without being configured gets nothing, and is left when the
settings ask for it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_bot.conftest import WAIT, Front


@pytest.fixture(scope="module")
def shipcord_options() -> dict[str, Any]:
    return {"config": {"leave_unconfigured_guilds": True}}


async def test_an_unconfigured_server_is_left_and_configured_ones_kept(front: Front) -> None:
    world, double = front.world, front.double
    app_id = world.app.user_id
    await double.wait_for(
        lambda: app_id not in double.state.guilds[world.unconfigured_guild.id].members,
        WAIT,
        "shipcord to leave the unconfigured server",
    )
    assert app_id in double.state.guilds[world.guild.id].members
    assert app_id in double.state.guilds[world.other_guild.id].members
