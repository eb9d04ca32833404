"""Who may steer a deployment: its owner, an admin-role member, or a Manage Server member."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord

from storage.records import DeploymentRecord


@dataclass(frozen=True, slots=True)
class Actor:
    """The person behind an interaction, as the checks need them (easy to build in tests)."""

    user_id: str
    guild_id: str | None
    role_ids: frozenset[str]
    role_names: frozenset[str]
    manage_guild: bool

    @classmethod
    def from_interaction(cls, interaction: discord.Interaction) -> Actor:
        user = interaction.user
        roles: Iterable[discord.Role] = user.roles if isinstance(user, discord.Member) else ()
        roles = list(roles)
        # `Interaction.permissions` is what Discord computed for this member in this channel.
        manage_guild = interaction.guild_id is not None and interaction.permissions.manage_guild
        return cls(
            user_id=str(user.id),
            guild_id=str(interaction.guild_id) if interaction.guild_id else None,
            role_ids=frozenset(str(role.id) for role in roles),
            role_names=frozenset(role.name for role in roles),
            manage_guild=manage_guild,
        )


def is_admin(actor: Actor, admin_role: str | None) -> bool:
    """Manage Server, or the configured admin role matched by id or by exact name."""
    if actor.manage_guild:
        return True
    if not admin_role:
        return False
    return admin_role in actor.role_ids or admin_role in actor.role_names


def is_visible(actor: Actor, record: DeploymentRecord) -> bool:
    """A deployment exists, for a user, only in the server it was started from."""
    return actor.guild_id is not None and record.guild_id == actor.guild_id


def can_control(actor: Actor, record: DeploymentRecord, admin_role: str | None) -> bool:
    return is_visible(actor, record) and (
        record.owner_id == actor.user_id or is_admin(actor, admin_role)
    )
