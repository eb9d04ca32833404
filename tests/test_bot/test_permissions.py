"""Who may control a deployment."""

from __future__ import annotations

from bot.permissions import Actor, can_control, is_visible
from tests.test_bot.test_render import make_record


def actor(
    user_id: str = "99",
    guild_id: str | None = "1",
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


def test_owner_may_control() -> None:
    assert can_control(actor(user_id="123456789012345678"), make_record(), None)


def test_stranger_may_not() -> None:
    assert not can_control(actor(), make_record(), "deployers")


def test_admin_role_by_name_or_id() -> None:
    member = actor(roles={"555": "deployers"})
    assert can_control(member, make_record(), "deployers")
    assert can_control(member, make_record(), "555")
    assert not can_control(member, make_record(), "other")
    assert not can_control(member, make_record(), None)


def test_manage_server_may_control() -> None:
    assert can_control(actor(manage_guild=True), make_record(), None)


def test_other_server_sees_nothing_even_as_owner_or_admin() -> None:
    elsewhere = actor(user_id="123456789012345678", guild_id="2", manage_guild=True)
    assert not is_visible(elsewhere, make_record())
    assert not can_control(elsewhere, make_record(), None)
    assert not is_visible(actor(guild_id=None), make_record())
