"""Approvals, /rollback, /logs and scheduled deploys through the real discord.py client, the
Discord double and a real Temporal dev server (which does not skip time: the approval
timeout and the scheduled start here are a few seconds of real time).

The module's own targets are appended to the shared targets file (shipcord re-reads it),
and its own people are added to the Ops server before shipcord connects, so that their
roles are in its guild cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.discord_double import DiscordDouble, MessageRecord, UserRecord
from tests.engine.harness import release_processes, wait_until
from tests.ports import NEVER_HEALTHY
from tests.test_bot.conftest import (
    QUICK_BOTS,
    RELEASE_ROLE,
    TARGET_TOKEN,
    TARGET_TOKEN_ENV,
    WAIT,
    Engine,
    Front,
    HealthGate,
    World,
    build_world,
    progress_messages,
    reply_text,
)
from workflows.models import DeploymentState

APPROVER_ROLE = "approvers"
MARKER = "shipcord-versioned-test-bot"
GATED = [f"gated-{n}" for n in range(4)]
SCHEDULED = QUICK_BOTS[9:11]


@dataclass
class People:
    approver: UserRecord  # has the approval role only
    requester: UserRecord  # may deploy (release role) and has the approval role too


@pytest.fixture(scope="module")
async def world(double_options: dict[str, Any]) -> AsyncIterator[World]:
    async with DiscordDouble(**double_options) as double:
        world = build_world(double)
        guild = world.guild.id
        approvers = double.add_role(guild, APPROVER_ROLE)
        release = next(
            role
            for role in double.state.roles.values()
            if role.guild_id == guild and role.name == RELEASE_ROLE
        )
        double.add_member(guild, double.add_user("pat").id, roles=[approvers.id])
        double.add_member(guild, double.add_user("quinn").id, roles=[release.id, approvers.id])
        yield world


@pytest.fixture(scope="module")
def people(world: World) -> People:
    users = {user.username: user for user in world.double.state.users.values()}
    return People(approver=users["pat"], requester=users["quinn"])


@pytest.fixture(scope="module", autouse=True)
def module_targets(engine: Engine, health_gate: HealthGate) -> None:
    import sys

    python = sys.executable
    common = f'token_env = "{TARGET_TOKEN_ENV}"\ndeploy_roles = ["{RELEASE_ROLE}"]\n'
    blocks = []
    for name in GATED:
        blocks.append(
            f'[bots.{name}]\ncommand = ["sleep", "600"]\nhealthy_after = 0\n{common}'
            f'approval = {{ role = "{APPROVER_ROLE}", timeout = "5m" }}\n'
        )
    blocks.append(
        f'[bots.gated-quick]\ncommand = ["sleep", "600"]\nhealthy_after = 0\n{common}'
        f'approval = {{ role = "{APPROVER_ROLE}", timeout = "3s" }}\n'
    )
    # Its command line carries its version; its health waits on the gate while a test
    # needs the deployment held.
    blocks.append(
        f'[bots.versioned]\ncommand = ["{python}", "-c", '
        f"\"import sys, time; print('{MARKER}', sys.argv[1], flush=True); time.sleep(600)\", "
        f'"{{version}}"]\nhealthy_after = 0\n{common}'
        f'health_url = "http://127.0.0.1:{health_gate.port}/versioned"\n'
    )
    # Prints its own token (which /logs must never show) and enough to need a file.
    blocks.append(
        f'[bots.chatty]\ncommand = ["{python}", "-c", '
        "\"import os, time; print('token is', os.environ['DISCORD_TOKEN'], flush=True); "
        "[print('line', n, 'of chatter') for n in range(300)]; import sys; "
        'sys.stdout.flush(); time.sleep(600)"]\n'
        f"healthy_after = 0.5\n{common}"
    )
    # Prints, then exits: its deployment fails in the health check.
    blocks.append(
        f'[bots.crasher]\ncommand = ["{python}", "-c", '
        "\"import os; print('boom with', os.environ['DISCORD_TOKEN'], flush=True); "
        'raise SystemExit(3)"]\n'
        f"healthy_after = 1\n{NEVER_HEALTHY}{common}"
    )
    # Staging for anyone with the release role; production behind approval, from staging.
    blocks.append(
        f'[bots.promoted]\ncommand = ["sleep", "600"]\nhealthy_after = 0\n{common}'
        "[bots.promoted.environments.staging]\n"
        "[bots.promoted.environments.production]\n"
        f'promote_from = "staging"\napproval = {{ role = "{APPROVER_ROLE}", timeout = "5m" }}\n'
    )
    with engine.targets_file.open("a", encoding="utf-8") as file:
        file.write("\n" + "\n".join(blocks))


# -- helpers ------------------------------------------------------------------------------


async def closed_as(front: Front, workflow_id: str) -> tuple[DeploymentState, str | None]:
    """Wait until the front end closed the row; its final state and error."""
    found: list[Any] = []

    async def closed() -> bool:
        record = await front.engine.storage.get_deployment(workflow_id)
        if record is not None and not record.is_open:
            found.append(record)
            return True
        return False

    await wait_until(closed, timeout=WAIT, what=f"{workflow_id} to close")
    return DeploymentState(found[-1].state), found[-1].error


async def state_is(front: Front, workflow_id: str, state: DeploymentState) -> None:
    async def reached() -> bool:
        return (await front.engine.deployments.status(workflow_id)).state is state

    await wait_until(reached, timeout=WAIT, what=f"{workflow_id} to be {state.value}")


async def buttons_show(front: Front, message: MessageRecord, *actions: str) -> None:
    def shown() -> bool:
        ids = [
            component.get("custom_id", "")
            for row in message.components
            for component in row.get("components", [])
        ]
        return all(any(i.startswith(f"shipcord:{a}:") for i in ids) for a in actions)

    await front.double.wait_for(shown, WAIT, f"buttons {actions}")


async def awaiting(front: Front, bot: str, requester: UserRecord) -> tuple[str, MessageRecord]:
    workflow_id = await front.deploy(bot, "1.0.0", user=requester)
    await state_is(front, workflow_id, DeploymentState.AWAITING_APPROVAL)
    message = await front.progress_message(workflow_id)
    await buttons_show(front, message, "approve", "reject", "cancel")
    return workflow_id, message


def running_versions(front: Front) -> list[str]:
    """The versions of the `versioned` releases running now, from their command lines."""
    versions = []
    for process in release_processes(front.engine.data_dir):
        command = process.cmdline()
        if any(MARKER in part for part in command):
            versions.append(command[-1])
    return versions


# -- approvals ----------------------------------------------------------------------------


async def test_an_approver_approves_after_the_requester_and_a_stranger_are_refused(
    front: Front, people: People
) -> None:
    world = front.world
    workflow_id, message = await awaiting(front, GATED[0], people.requester)
    await front.wait_for_text(message, "awaiting approval", APPROVER_ROLE)

    own = await front.click(message, "approve", user=people.requester)
    assert own.startswith(f"You asked for `{workflow_id}`, so someone else must approve"), own
    for user in (world.stranger, world.admin):
        refused = await front.click(message, "approve", user=user)
        assert refused.startswith(f"Only members with the role **{APPROVER_ROLE}**"), refused
    refused = await front.click(message, "reject", user=world.stranger)
    assert refused.startswith(f"Only members with the role **{APPROVER_ROLE}** may reject")
    assert (
        await front.engine.deployments.status(workflow_id)
    ).state is DeploymentState.AWAITING_APPROVAL

    answer = await front.click(message, "approve", user=people.approver)
    assert answer == f"Approved `{workflow_id}`: it carries on.", answer
    assert await closed_as(front, workflow_id) == (DeploymentState.SUCCEEDED, None)
    await front.wait_for_text(message, "Deployed", f"approved by <@{people.approver.id}>")

    history = await front.command("history", {"bot": GATED[0]}, user=world.admin)
    assert f"(approved by <@{people.approver.id}>)" in history


async def test_a_promotion_waits_for_productions_approval_and_rollback_is_per_environment(
    front: Front, people: People
) -> None:
    async def to_staging(version: str) -> str:
        answer = await front.command(
            "deploy",
            {"bot": "promoted", "version": version, "environment": "staging"},
            user=people.requester,
        )
        assert answer.startswith(f"Deploying **promoted.staging** `{version}`"), answer
        workflow_id = answer.split("`")[3]
        assert await closed_as(front, workflow_id) == (DeploymentState.SUCCEEDED, None)
        return workflow_id

    await to_staging("1.0.0")
    await to_staging("2.0.0")
    answer = await front.command(
        "promote", {"bot": "promoted", "from": "staging", "to": "production"}, user=people.requester
    )
    assert answer.startswith("Deploying **promoted.production** `2.0.0`"), answer
    workflow_id = answer.split("`")[3]
    await state_is(front, workflow_id, DeploymentState.AWAITING_APPROVAL)
    message = await front.progress_message(workflow_id)
    await buttons_show(front, message, "approve")
    approved = await front.click(message, "approve", user=people.approver)
    assert approved == f"Approved `{workflow_id}`: it carries on.", approved
    assert await closed_as(front, workflow_id) == (DeploymentState.SUCCEEDED, None)

    # Staging's rollback puts its own release #1 back; production keeps its #1.
    rollback = await front.command(
        "rollback", {"bot": "promoted", "environment": "staging"}, user=people.requester
    )
    assert rollback.startswith("Deploying **promoted.staging** `1.0.0`"), rollback
    assert await closed_as(front, rollback.split("`")[3]) == (DeploymentState.SUCCEEDED, None)
    staging = await front.engine.storage.list_releases("promoted.staging")
    production = await front.engine.storage.list_releases("promoted.production")
    assert [(r.number, r.version, r.status) for r in staging][-1] == (3, "1.0.0", "active")
    assert [(r.number, r.version, r.status) for r in production] == [(1, "2.0.0", "active")]


async def test_a_rejection_after_a_restart_ends_it_cancelled_with_the_reason(
    front: Front, people: People
) -> None:
    workflow_id, message = await awaiting(front, GATED[1], people.requester)
    # The wait is durable and the buttons carry what they act on: a restart changes nothing.
    await front.restart()
    answer = await front.click(message, "reject", user=people.approver)
    assert answer.startswith(f"Rejected `{workflow_id}`"), answer
    state, error = await closed_as(front, workflow_id)
    assert state is DeploymentState.CANCELLED
    assert error == f"Rejected by {people.approver.id}"
    await front.wait_for_text(message, "Cancelled", f"rejected by <@{people.approver.id}>")


async def test_no_decision_in_time_ends_it_cancelled(front: Front, people: People) -> None:
    workflow_id = await front.deploy("gated-quick", "1.0.0", user=people.requester)
    state, error = await closed_as(front, workflow_id)
    assert (state, error) == (DeploymentState.CANCELLED, "Not approved within 3s")
    message = await front.progress_message(workflow_id)
    await front.wait_for_text(message, "not approved in time")


# -- rollback -----------------------------------------------------------------------------

NO_SUCH_NUMBER = "There is no release with that number: releases are numbered from 1 to 2147483647."


async def test_rollback_to_the_previous_and_to_a_named_release(
    front: Front, people: People
) -> None:
    world = front.world
    front.let_finish("versioned")
    answer = await front.command("rollback", {"bot": "versioned"}, user=world.admin)
    assert answer.startswith("**versioned** has no previous release"), answer
    for version in ("1.0.0", "2.0.0"):
        deployed = await front.deploy("versioned", version, user=world.owner)
        assert (await closed_as(front, deployed))[0] is DeploymentState.SUCCEEDED
    assert running_versions(front) == ["2.0.0"]

    choices = await front.double.autocomplete(
        world.app, "rollback", {"bot": "versioned", "release": ""}, focused="release",
        user=world.admin,
    )  # fmt: skip
    assert [choice["value"] for choice in choices] == [1]
    assert choices[0]["name"].startswith("#1 · 1.0.0 · ")
    stranger_choices = await front.double.autocomplete(
        world.app, "rollback", {"bot": "versioned", "release": ""}, focused="release",
        user=world.stranger,
    )  # fmt: skip
    assert stranger_choices == []
    refused = await front.command("rollback", {"bot": "versioned"}, user=world.stranger)
    assert refused.startswith("You may not deploy **versioned**"), refused
    unknown = await front.command("rollback", {"bot": "versioned", "release": 99}, user=world.admin)
    assert unknown == "**versioned** has no release #99 (its releases: #1 to #2).", unknown
    for number in (0, -1, 2**31, 2**63, 10**30):
        for command in ("rollback", "logs"):
            out_of_range = await front.command(
                command, {"bot": "versioned", "release": number}, user=world.admin
            )
            assert out_of_range == NO_SUCH_NUMBER, (command, number, out_of_range)

    # The last good release, held in its health check while someone tries to deploy.
    front.health_gate.open.discard("versioned")  # type: ignore[union-attr]
    answer = await front.command("rollback", {"bot": "versioned"}, user=world.owner)
    assert answer.startswith("Deploying **versioned** `1.0.0`"), answer
    rollback = answer.split("`")[3]
    blocked = await front.command(
        "deploy", {"bot": "versioned", "version": "3.0.0"}, user=world.admin
    )
    assert "already has a deployment in progress" in blocked and rollback in blocked
    message = await front.progress_message(rollback)
    await front.wait_for_text(message, "Rollback to", "release #1")
    front.let_finish("versioned")
    assert (await closed_as(front, rollback))[0] is DeploymentState.SUCCEEDED
    assert running_versions(front) == ["1.0.0"]
    releases = await front.engine.storage.list_releases("versioned")
    assert [(r.number, r.version, r.status) for r in releases] == [
        (1, "1.0.0", "superseded"),
        (2, "2.0.0", "superseded"),
        (3, "1.0.0", "active"),
    ]

    # A named one: release #2 again.
    answer = await front.command("rollback", {"bot": "versioned", "release": 2}, user=world.owner)
    assert answer.startswith("Deploying **versioned** `2.0.0`"), answer
    named = answer.split("`")[3]
    assert (await closed_as(front, named))[0] is DeploymentState.SUCCEEDED
    assert running_versions(front) == ["2.0.0"]
    current = await front.command("rollback", {"bot": "versioned", "release": 4}, user=world.owner)
    assert "is the one live now" in current, current

    history = await front.command("history", {"bot": "versioned"}, user=world.admin)
    assert "#4 (rollback to #2) `2.0.0`" in history, history


# -- logs ---------------------------------------------------------------------------------


async def test_logs_are_redacted_for_admins_and_refused_to_strangers(front: Front) -> None:
    world = front.world
    deployed = await front.deploy("chatty", "1.0.0", user=world.owner)
    assert (await closed_as(front, deployed))[0] is DeploymentState.SUCCEEDED

    refused = await front.command("logs", {"bot": "chatty"}, user=world.stranger)
    assert refused.startswith("Only the admins of **chatty**'s server"), refused
    outsider = await front.command(
        "logs", {"bot": "chatty"}, user=world.unconfigured_member,
        channel=world.unconfigured_channel_id,
    )  # fmt: skip
    assert "not enabled in this server" in outsider

    record = await front.double.dispatch_command(
        world.app, "logs", {"bot": "chatty"}, user=world.admin, channel=world.channel_id
    )
    await front.double.wait_for_interaction_reply(record.id, timeout=WAIT)
    content = reply_text(front.double, record.id)
    answer = front.double.message(front.double.interaction(record.id).reply_message_id)
    assert answer.ephemeral
    assert content.startswith("Log of **chatty** release #1"), content
    [log_file] = answer.files.values()
    text = log_file.decode()
    assert "token is ***" in text and "line 299 of chatter" in text
    assert TARGET_TOKEN not in text and TARGET_TOKEN not in content

    # The owner of the deployment that made the release may read it too, inline when short.
    versioned = await front.command("logs", {"bot": "versioned", "release": 1}, user=world.owner)
    assert versioned.startswith("Log of **versioned** release #1:\n```"), versioned
    assert f"{MARKER} 1.0.0" in versioned


async def test_show_log_on_a_failed_deployment(front: Front) -> None:
    world = front.world
    failed = await front.deploy("crasher", "1.0.0", user=world.owner)
    assert (await closed_as(front, failed))[0] is DeploymentState.FAILED
    message = await front.progress_message(failed)
    await front.wait_for_text(message, "**Failed**")
    await buttons_show(front, message, "log")
    refused = await front.click(message, "log", user=world.stranger)
    assert refused.startswith("Only the admins of **crasher**'s server"), refused
    shown_log = await front.click(message, "log", user=world.owner)
    assert shown_log.startswith("Log of **crasher** release #1:\n```\n"), shown_log
    assert "\nboom with ***\n" in shown_log and "exited with status 3" in shown_log
    assert TARGET_TOKEN not in shown_log


# -- scheduled deploys --------------------------------------------------------------------


async def test_a_scheduled_deploy_starts_on_time(front: Front) -> None:
    world = front.world
    bot = SCHEDULED[0]
    answer = await front.command(
        "deploy", {"bot": bot, "version": "1.2.3", "at": "in 3s"}, user=world.owner
    )
    assert answer.startswith(f"Scheduled **{bot}** `1.2.3` for <t:"), answer
    assert answer.endswith("; /cancel removes it.")
    workflow_id = answer.split("`")[3]
    listing = await front.command("status", user=world.owner)
    assert workflow_id in listing and "scheduled for <t:" in listing, listing
    assert progress_messages(front.double, world.channel_id, workflow_id) == []

    message = await front.progress_message(workflow_id)
    assert (await closed_as(front, workflow_id))[0] is DeploymentState.SUCCEEDED
    await front.wait_for_text(message, "Deployed")


async def test_a_scheduled_deploy_cancelled_before_its_start(front: Front) -> None:
    world = front.world
    bot = SCHEDULED[1]
    bad = await front.command(
        "deploy", {"bot": bot, "version": "1.0.0", "at": "yesterday"}, user=world.owner
    )
    assert bad.startswith("'yesterday' is not a time I understand"), bad
    answer = await front.command(
        "deploy", {"bot": bot, "version": "1.0.0", "at": "in 10m"}, user=world.owner
    )
    assert answer.startswith(f"Scheduled **{bot}**"), answer
    workflow_id = answer.split("`")[3]
    blocked = await front.command("deploy", {"bot": bot, "version": "1.0.1"}, user=world.owner)
    assert "already has a deployment in progress" in blocked
    detail = await front.command("status", {"deployment": workflow_id}, user=world.owner)
    assert detail.startswith(f"`{workflow_id}` **{bot}** `1.0.0` — scheduled for <t:"), detail

    cancelled = await front.command("cancel", {"deployment": workflow_id}, user=world.owner)
    assert cancelled.startswith(f"Cancelling `{workflow_id}`"), cancelled
    state, _ = await closed_as(front, workflow_id)
    assert state is DeploymentState.CANCELLED
    assert await front.engine.storage.list_releases(bot) == []
    # The bot is free again at once.
    again = await front.deploy(bot, "1.0.1", user=world.owner)
    assert (await closed_as(front, again))[0] is DeploymentState.SUCCEEDED
