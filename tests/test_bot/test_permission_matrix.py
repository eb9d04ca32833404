"""Who may do what, where: every actor and every way in, through the real discord.py client.

The cast (see conftest.build_world): Ops is the server the bots belong to and where the
deployment under test was started; Elsewhere is another server shipcord serves; Nowhere
has shipcord but is not configured. Every target may be deployed by the `release` role of
Ops besides admins (the admin role `deployers`, or Manage Server).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.discord_double import MessageRecord, UserRecord
from tests.engine.harness import wait_until
from tests.test_bot.conftest import SLEEPERS, WAIT, Front, World
from workflows.models import DeploymentState

MANAGE_GUILD = str(1 << 5)
BOT = SLEEPERS[9]

# What each actor gets; one letter per way in:
#   deploy       A: allowed (here: the bot is busy, so "already in progress" naming it)
#                R: refused, nothing started
#                N: this server is not enabled
#   status one   A: shown · U: "unknown deployment" · N
#   status list  A: listed · H: not listed · N
#   control      A: paused, resumed and (on a deployment of its own) cancelled, by command and
#                   by button · R: refused, nothing changed · U: unknown · N
#   autocomplete A: the bot and the deployment are offered · D: only the bot · -: nothing
MATRIX = {
    "founder": "AAAAA",  # owns the server: Manage Server
    "owner": "AAAAA",  # started the deployment (release role)
    "admin": "AAAAA",  # the admin role
    "manager": "AAAAA",  # Manage Server through a role
    "deployer": "AAARD",  # the release role, not the owner
    "stranger": "RAAR-",  # a member with no role
    "outsider": "RUHU-",  # a member of Elsewhere only
    "wanderer": "NNNN-",  # a member of Nowhere only
}


@dataclass
class Cast:
    user: UserRecord
    channel: int
    in_ops: bool


def cast(world: World) -> dict[str, Cast]:
    ops, elsewhere = world.channel_id, world.other_channel_id
    return {
        "founder": Cast(world.founder, ops, True),
        "owner": Cast(world.owner, ops, True),
        "admin": Cast(world.admin, ops, True),
        "manager": Cast(world.manager, ops, True),
        "deployer": Cast(world.deployer, ops, True),
        "stranger": Cast(world.stranger, ops, True),
        "outsider": Cast(world.outsider, elsewhere, False),
        "wanderer": Cast(world.unconfigured_member, world.unconfigured_channel_id, False),
    }


def not_enabled(answer: str, world: World) -> bool:
    return "not enabled in this server" in answer and str(world.unconfigured_guild.id) in answer


async def state_of(front: Front, workflow_id: str) -> DeploymentState:
    return (await front.engine.deployments.status(workflow_id)).state


async def paused_is(front: Front, workflow_id: str, paused: bool) -> None:
    async def reached() -> bool:
        state = await state_of(front, workflow_id)
        return (state is DeploymentState.PAUSED) is paused

    await wait_until(reached, timeout=WAIT, what=f"paused={paused}")


async def button(front: Front, message: MessageRecord, action: str, user: UserRecord) -> str:
    await front.double.wait_for(
        lambda: any(
            c.get("custom_id", "").startswith(f"shipcord:{action}:")
            for row in message.components
            for c in row.get("components", [])
        ),
        WAIT,
        f"a {action} button",
    )
    return await front.click(message, action, user=user)


@pytest.mark.parametrize("who", list(MATRIX))
async def test_permission_matrix(front: Front, who: str) -> None:
    world = front.world
    actor = cast(world)[who]
    deploy, status_one, status_list, control, complete = MATRIX[who]
    user, channel = actor.user, actor.channel

    # The deployment under test: the owner's, held in its health check.
    record = await front.engine.storage.get_deployment(await ongoing(front))
    assert record is not None
    workflow_id = record.workflow_id
    rows_before = len(await front.engine.storage.list_deployments(limit=500))

    async def ask(name: str, options: dict[str, str] | None = None) -> str:
        return await front.command(name, options, user=user, channel=channel)

    # /deploy
    answer = await ask("deploy", {"bot": BOT, "version": "9.9.9"})
    if deploy == "A":
        assert "already has a deployment in progress" in answer and workflow_id in answer
    elif deploy == "R":
        assert answer.startswith(("You may not deploy", "Unknown bot")), answer
        assert workflow_id not in answer
    else:
        assert not_enabled(answer, world), answer
    assert len(await front.engine.storage.list_deployments(limit=500)) == rows_before

    # /status deployment:
    answer = await ask("status", {"deployment": workflow_id})
    if status_one == "A":
        assert workflow_id in answer and "State:" in answer
    elif status_one == "U":
        assert answer == f"Unknown deployment `{workflow_id}` in this server."
    else:
        assert not_enabled(answer, world), answer

    # /status
    answer = await ask("status")
    if status_list == "A":
        assert workflow_id in answer
    elif status_list == "H":
        assert workflow_id not in answer
    else:
        assert not_enabled(answer, world) and workflow_id not in answer

    # /pause, /resume, /cancel by command, and the buttons
    if control == "A":
        assert (await ask("pause", {"deployment": workflow_id})).startswith("Paused")
        await paused_is(front, workflow_id, True)
        assert (await ask("resume", {"deployment": workflow_id})).startswith("Resumed")
        await paused_is(front, workflow_id, False)
        message = await front.progress_message(workflow_id)
        assert (await button(front, message, "pause", user)).startswith("Paused")
        await paused_is(front, workflow_id, True)
        assert (await button(front, message, "resume", user)).startswith("Resumed")
        await paused_is(front, workflow_id, False)
        # Cancelling ends a deployment: this actor cancels one of its own.
        other = await start_held(front, SLEEPERS[8])
        assert (await ask("cancel", {"deployment": other})).startswith("Cancelling")
        await closed(front, other)
        another = await start_held(front, SLEEPERS[8])
        message = await front.progress_message(another)
        assert (await button(front, message, "cancel", user)).startswith("Cancelling")
        await closed(front, another)
    else:
        for action in ("pause", "resume", "cancel"):
            answer = await ask(action, {"deployment": workflow_id})
            if control == "R":
                assert answer.startswith("Only the owner"), answer
            elif control == "U":
                assert answer == f"Unknown deployment `{workflow_id}` in this server."
            else:
                assert not_enabled(answer, world), answer
            if actor.in_ops:
                message = await front.progress_message(workflow_id)
                for clicked in ("pause", "cancel"):
                    refused = await button(front, message, clicked, user)
                    assert refused.startswith("Only the owner"), refused
        assert await state_of(front, workflow_id) is DeploymentState.RUNNING

    # autocomplete
    guild_bots = await front.double.autocomplete(
        world.app, "deploy", {"bot": BOT}, focused="bot", user=user, channel=channel
    )
    controllable = await front.double.autocomplete(
        world.app, "pause", {"deployment": ""}, focused="deployment", user=user, channel=channel
    )
    offered_bot = BOT in [choice["value"] for choice in guild_bots]
    offered_deployment = workflow_id in [choice["value"] for choice in controllable]
    assert (offered_bot, offered_deployment) == {
        "A": (True, True),
        "D": (True, False),
        "-": (False, False),
    }[complete]


async def ongoing(front: Front) -> str:
    """The owner's deployment of BOT, started once and held in its health check."""
    rows = await front.engine.storage.list_open_deployments()
    for row in rows:
        if row.bot_name == BOT:
            return row.workflow_id
    return await start_held(front, BOT)


async def start_held(front: Front, bot_name: str) -> str:
    """Deployed by the owner; a sleeper stays in its health check until let through."""
    workflow_id = await front.deploy(bot_name, "1.0.0", user=front.world.owner)

    async def checking() -> bool:
        status = await front.engine.deployments.status(workflow_id)
        return status.step == "Running health check"

    await wait_until(checking, timeout=WAIT, what="the health check")
    return workflow_id


async def closed(front: Front, workflow_id: str) -> None:
    async def is_closed() -> bool:
        record = await front.engine.storage.get_deployment(workflow_id)
        return record is not None and not record.is_open

    await wait_until(is_closed, timeout=WAIT, what=f"{workflow_id} to close")


async def test_commands_are_server_only_with_manage_server_by_default(front: Front) -> None:
    registered = {
        command["name"]: command
        for command in front.double.commands(front.world.app, guild_id=front.world.guild.id)
    }
    for name in ("deploy", "promote", "pause", "resume", "cancel"):
        assert str(registered[name]["default_member_permissions"]) == MANAGE_GUILD, name
    assert registered["status"]["default_member_permissions"] is None
    for command in registered.values():
        assert command["contexts"] == [0] or command["dm_permission"] is False


async def test_the_conflict_answer_never_shows_another_servers_deployment(front: Front) -> None:
    """A deployer of Elsewhere (the bot belongs to both servers) meets the Ops deployment."""
    world = front.world
    workflow_id = await ongoing(front)
    answer = await front.command(
        "deploy",
        {"bot": BOT, "version": "2.0.0"},
        user=world.elsewhere_deployer,
        channel=world.other_channel_id,
    )
    assert "already has a deployment in progress" in answer
    assert workflow_id not in answer and "deploy-" not in answer


@pytest.mark.parametrize(
    ("bot", "version", "expected"),
    [
        ("e" * 2100, "1.0.0", "Unknown bot"),
        (f"{BOT}\nx", "1.0.0", "Unknown bot"),
        (BOT, "1.0.0\nrm -rf /", "not well formed"),
        (BOT, "9" * 3000, "not well formed"),
    ],
)
async def test_unbounded_input_gets_a_short_answer(
    front: Front, bot: str, version: str, expected: str
) -> None:
    answer = await front.command("deploy", {"bot": bot, "version": version}, user=front.world.admin)
    assert expected in answer and len(answer) < 2000
