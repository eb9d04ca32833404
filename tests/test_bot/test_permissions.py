"""The permission model as pure rules (the end-to-end matrix is in test_permission_matrix)."""

from __future__ import annotations

from pathlib import Path

from bot.access.policy import AccessPolicy, Actor
from tests.test_bot.test_render import make_record
from workflows.targets import Target

OPS, ELSEWHERE, NOWHERE = "111111111111111111", "222222222222222222", "333333333333333333"
OWNER = "123456789012345678"


def actor(
    user_id: str = "999999999999999999",
    guild_id: str | None = OPS,
    roles: dict[str, str] | None = None,
    manage_guild: bool = False,
) -> Actor:
    roles = roles or {}
    return Actor(
        user_id=user_id,
        guild_id=guild_id,
        role_ids=frozenset(roles),
        role_names=frozenset(roles.values()),
        manage_guild=manage_guild,
    )


def target(**fields: object) -> Target:
    values: dict[str, object] = {
        "name": "echo",
        "working_directory": Path("/srv"),
        "command": ["run"],
        "token_env": "T",
    }
    values.update(fields)
    return Target.model_validate(values)


POLICY = AccessPolicy(guild_ids=[OPS, ELSEWHERE], admin_role="deployers")
RECORD = make_record(guild_id=OPS, owner_id=OWNER)


def test_only_configured_servers_are_enabled() -> None:
    assert POLICY.is_enabled(actor(guild_id=OPS), [])
    assert not POLICY.is_enabled(actor(guild_id=NOWHERE), [])
    assert POLICY.is_enabled(actor(guild_id=NOWHERE), [target(guilds=[NOWHERE])])
    assert not POLICY.is_enabled(actor(guild_id=None), [])


def test_the_refusal_says_what_to_set_with_this_servers_id() -> None:
    text = POLICY.not_enabled(actor(guild_id=NOWHERE), [])
    assert "SHIPCORD_GUILD_IDS" in text and NOWHERE in text
    fresh = AccessPolicy(guild_ids=[], admin_role=None)
    first = fresh.not_enabled(actor(guild_id=NOWHERE), [])
    assert f"SHIPCORD_GUILD_IDS={NOWHERE}" in first and "no server configured" in first


def test_by_default_only_admins_deploy() -> None:
    assert POLICY.may_deploy(actor(manage_guild=True), target())
    assert POLICY.may_deploy(actor(roles={"5": "deployers"}), target())
    assert POLICY.may_deploy(actor(roles={"555": "x"}), target()) is False
    assert not POLICY.may_deploy(actor(), target())


def test_a_target_names_roles_users_and_servers() -> None:
    release = target(deploy_roles=["release"], deploy_users=[OWNER], guilds=[OPS])
    assert POLICY.may_deploy(actor(roles={"7": "release"}), release)
    assert POLICY.may_deploy(actor(user_id=OWNER), release)
    # Admins of another server may not deploy a bot that does not belong there.
    assert not POLICY.may_deploy(actor(guild_id=ELSEWHERE, manage_guild=True), release)


def test_a_deployment_is_seen_where_it_started_and_by_the_bots_admins() -> None:
    assert POLICY.may_see(actor(), RECORD, target())
    assert not POLICY.may_see(actor(guild_id=ELSEWHERE, user_id=OWNER), RECORD, target())
    # Started by another client, with no server: the bot's admins see it, nobody else.
    external = make_record(guild_id=None, owner_id="user-123")
    assert POLICY.may_see(actor(manage_guild=True), external, target(guilds=[OPS]))
    assert not POLICY.may_see(actor(), external, target(guilds=[OPS]))
    assert not POLICY.may_see(actor(manage_guild=True), external, None)


def test_owner_and_admins_control_nobody_else() -> None:
    assert POLICY.may_control(actor(user_id=OWNER), RECORD, target())
    assert POLICY.may_control(actor(manage_guild=True), RECORD, target())
    assert not POLICY.may_control(
        actor(roles={"7": "release"}), RECORD, target(deploy_roles=["release"])
    )
    assert not POLICY.may_control(actor(), RECORD, target())
    elsewhere_admin = actor(guild_id=ELSEWHERE, manage_guild=True)
    assert not POLICY.may_control(elsewhere_admin, RECORD, target(guilds=[OPS]))
    assert POLICY.may_control(elsewhere_admin, RECORD, target(guilds=[OPS, ELSEWHERE]))
