"""Who may do what with shipcord, and where. Every interaction is checked here, whatever
Discord's own command permissions (Server Settings → Integrations) already let through."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import discord

from storage import DeploymentRecord
from workflows.targets import Target

# Where an interaction keeps its actor (discord.Interaction.extras).
ACTOR_KEY = "shipcord.actor"


@dataclass(frozen=True, slots=True)
class Actor:
    """The person behind an interaction, as the checks need them (easy to build in tests)."""

    user_id: str
    guild_id: str | None
    role_ids: frozenset[str]
    role_names: frozenset[str]
    manage_guild: bool

    @classmethod
    def of(cls, interaction: discord.Interaction[Any]) -> Actor:
        """Who is asking, read once per interaction and kept with it."""
        actor = interaction.extras.get(ACTOR_KEY)
        if not isinstance(actor, Actor):
            actor = interaction.extras[ACTOR_KEY] = cls.from_interaction(interaction)
        return actor

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

    def has_role(self, role: str) -> bool:
        """The role named by id or by exact name."""
        return role in self.role_ids or role in self.role_names


class AccessPolicy:
    def __init__(self, *, guild_ids: Iterable[str], admin_role: str | None) -> None:
        self.guild_ids = frozenset(guild_ids)
        self.admin_role = admin_role

    # -- servers ------------------------------------------------------------------------

    def enabled_servers(self, targets: Iterable[Target]) -> frozenset[str]:
        return self.guild_ids.union(*(target.guilds for target in targets))

    def is_enabled(self, actor: Actor, targets: Iterable[Target]) -> bool:
        return actor.guild_id is not None and actor.guild_id in self.enabled_servers(targets)

    def not_enabled(self, actor: Actor, targets: Iterable[Target]) -> str:
        """The refusal for a server that is not configured: exactly what to set."""
        here = actor.guild_id or "this server's id"
        if not self.enabled_servers(targets):
            return (
                "shipcord has no server configured yet, so it does nothing anywhere. An "
                f"operator sets SHIPCORD_GUILD_IDS={here} (this server's id) in its settings "
                "and restarts it."
            )
        return (
            "shipcord is not enabled in this server. An operator can enable it by adding "
            f"this server's id ({here}) to SHIPCORD_GUILD_IDS, or to a target's `guilds` in "
            "the targets file."
        )

    def bot_servers(self, target: Target) -> frozenset[str]:
        return frozenset(target.guilds) if target.guilds else self.guild_ids

    # -- people ---------------------------------------------------------------------------

    def is_admin(self, actor: Actor) -> bool:
        """Manage Server, or the configured admin role (by id or exact name)."""
        if actor.manage_guild:
            return True
        return self.admin_role is not None and actor.has_role(self.admin_role)

    def may_deploy(self, actor: Actor, target: Target) -> bool:
        if actor.guild_id not in self.bot_servers(target):
            return False
        return (
            self.is_admin(actor)
            or actor.user_id in target.deploy_users
            or any(actor.has_role(role) for role in target.deploy_roles)
        )

    def deployable(self, actor: Actor, targets: Iterable[Target]) -> list[Target]:
        return [target for target in targets if self.may_deploy(actor, target)]

    def belongs_here(self, actor: Actor, target: Target) -> bool:
        return actor.guild_id in self.bot_servers(target)

    # -- deployments ------------------------------------------------------------------------

    def may_see(self, actor: Actor, record: DeploymentRecord, target: Target | None) -> bool:
        if actor.guild_id is None:
            return False
        if record.guild_id == actor.guild_id:
            return True
        return self._admin_of_bot(actor, target)

    def may_control(self, actor: Actor, record: DeploymentRecord, target: Target | None) -> bool:
        if not self.may_see(actor, record, target):
            return False
        if record.guild_id == actor.guild_id and (
            record.owner_id == actor.user_id or self.is_admin(actor)
        ):
            return True
        return self._admin_of_bot(actor, target)

    def may_control_bot(self, actor: Actor, target: Target) -> bool:
        """Every deployment of the bot, and what it runs: an admin of one of its servers."""
        return self._admin_of_bot(actor, target)

    def _admin_of_bot(self, actor: Actor, target: Target | None) -> bool:
        return (
            target is not None
            and actor.guild_id in self.bot_servers(target)
            and self.is_admin(actor)
        )
