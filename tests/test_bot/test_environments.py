"""Environments through Discord: /deploy to one, /promote what it runs to another, and
the commands that read a bot's deployments, per environment."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from tests.test_bot.conftest import PAIRED_BOT, Front


def soaked(front: Front, target_name: str, minutes: float) -> None:
    """Move the live release's start back, as if `minutes` had passed since it went live."""
    went_live = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
    with sqlite3.connect(front.engine.data_dir / "shipcord.db") as db:
        db.execute(
            "UPDATE releases SET live_since = ? WHERE bot_name = ? AND status = 'active'",
            (went_live, target_name),
        )


async def test_deploy_to_an_environment_then_promote_exactly_its_release(front: Front) -> None:
    world = front.world

    async def promote() -> str:
        options = {"bot": PAIRED_BOT, "from": "staging", "to": "production"}
        return await front.command("promote", options, user=world.owner)

    async def deploy(version: str, environment: str) -> str:
        options = {"bot": PAIRED_BOT, "version": version, "environment": environment}
        return await front.command("deploy", options, user=world.owner)

    environments = await front.double.autocomplete(
        world.app,
        "deploy",
        {"bot": PAIRED_BOT, "environment": ""},
        focused="environment",
        user=world.owner,
    )
    assert [choice["value"] for choice in environments] == ["production", "staging"]
    unnamed = await front.command(
        "deploy", {"bot": PAIRED_BOT, "version": "1.2.0"}, user=world.owner
    )
    assert "has several environments (production, staging)" in unnamed
    nothing = await promote()
    assert "Nothing is live in staging for **paired**" in nothing

    answer = await deploy("1.2.0", "staging")
    assert answer.startswith("Deploying **paired.staging** `1.2.0`"), answer
    staging_id = answer.split("`")[3]
    message = await front.progress_message(staging_id)
    await front.wait_for_text(message, "State: succeeded")
    assert "Environment" in str(message.embeds) and "staging" in str(message.embeds)

    early = await promote()
    assert "has been live in staging for 0 of 30 minutes" in early
    # Straight to production: refused the same way, at once.
    straight = await deploy("9.9.9", "production")
    assert straight.startswith("staging runs release #1 (1.2.0) of **paired**, not 9.9.9"), straight

    soaked(front, "paired.staging", minutes=31)
    promoted = await promote()
    assert promoted.startswith("Deploying **paired.production** `1.2.0`"), promoted
    production_id = promoted.split("`")[3]
    request = await front.engine.deployments.input_of(production_id)
    assert (request.bot_name, request.environment, request.version) == (
        "paired",
        "production",
        "1.2.0",
    )
    await front.wait_for_text(await front.progress_message(production_id), "State: succeeded")

    history = await front.command(
        "history", {"bot": PAIRED_BOT, "environment": "staging"}, user=world.owner
    )
    assert staging_id in history and production_id not in history
    logs = await front.command(
        "logs", {"bot": PAIRED_BOT, "environment": "production"}, user=world.owner
    )
    assert logs.startswith("Log of **paired.production** release #1:"), logs
