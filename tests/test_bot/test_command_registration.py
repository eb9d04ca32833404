"""Commands appear without a separate step: at start, the front end registers them in each
configured server (SHIPCORD_GUILD_IDS and the targets' servers), where they appear at once;
nowhere else, and not globally (that stays `shipcord sync-commands`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_bot.conftest import WAIT, Front, World


@pytest.fixture(scope="module")
def shipcord_options(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # One server from the settings, another only from a target's `guilds`; no dev server.
    targets = tmp_path_factory.mktemp("registration") / "targets.toml"
    targets.write_text(
        f'[bots.elsewhere]\ncommand = ["sleep", "600"]\ntoken_env = "SHIPCORD_TEST_TOKEN"\n'
        f'guilds = ["{world.other_guild.id}"]\n',
        encoding="utf-8",
    )
    return {
        "config": {
            "dev_guild_id": None,
            "guild_ids": frozenset({str(world.guild.id)}),
            "targets_file": targets,
        }
    }


async def test_commands_are_registered_in_each_configured_server_at_start(front: Front) -> None:
    world, double = front.world, front.double

    def names(guild_id: int | None) -> set[str]:
        return {command["name"] for command in double.commands(world.app, guild_id)}

    for guild in (world.guild, world.other_guild):
        await double.wait_for(
            lambda guild_id=guild.id: {"deploy", "status"} <= names(guild_id),
            WAIT,
            f"the commands in server {guild.id}",
        )
    assert names(world.unconfigured_guild.id) == set()
    assert names(None) == set()
