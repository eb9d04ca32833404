"""The permission model applied to this installation's targets file, with the refusals a
person reads. Everything a command, a button or an autocomplete shows or does passes here.
"""

from __future__ import annotations

import structlog

from bot.access.policy import AccessPolicy, Actor
from bot.interactions.user_answers import UserError
from storage import DeploymentRecord
from workflows.models import quoted
from workflows.targets import (
    EnvironmentNeeded,
    Target,
    TargetRegistry,
    TargetsError,
    UnknownTarget,
)

log = structlog.get_logger(__name__)

# An unknown bot is answered with the ones this person may deploy, up to this many.
NAMES_LISTED = 20
TARGETS_BROKEN = (
    "The targets file cannot be read, so nothing can be deployed; an admin has to fix it "
    "(see the logs)."
)


class Access:
    def __init__(self, policy: AccessPolicy, targets: TargetRegistry) -> None:
        self.policy = policy
        self._targets = targets

    def targets(self) -> list[Target]:
        """The declared targets; none while the targets file cannot be read."""
        try:
            return list(self._targets.current().bots.values())
        except TargetsError as error:
            log.error("targets_file_invalid", error=str(error))
            return []

    def target_of(self, bot_name: str) -> Target | None:
        try:
            return self._targets.get(bot_name)
        except (UnknownTarget, TargetsError):
            return None

    def is_enabled(self, actor: Actor) -> bool:
        return self.policy.is_enabled(actor, self.targets())

    def require_enabled(self, actor: Actor) -> None:
        targets = self.targets()
        if not self.policy.is_enabled(actor, targets):
            raise UserError(self.policy.not_enabled(actor, targets))

    def target_here(self, actor: Actor, bot_name: str, environment: str | None) -> Target | None:
        """The target of `bot_name` in `environment` (None: its own or default one) if it
        belongs to the actor's server; a refusal when it must name an environment."""
        try:
            target: Target | None = self._targets.current().resolve(bot_name, environment)
        except TargetsError as error:
            log.error("targets_file_invalid", error=str(error))
            raise UserError(TARGETS_BROKEN) from None
        except EnvironmentNeeded:
            here = self.environments_offered(actor, bot_name, to_deploy=False)
            if here:
                raise UserError(
                    f"**{bot_name}** has several environments ({', '.join(here)}): name the "
                    "one to use (the `environment` option)."
                ) from None
            target = None
        except UnknownTarget:
            target = None
        if target is None or not self.policy.belongs_here(actor, target):
            return None
        return target

    def target_to_deploy(self, actor: Actor, bot_name: str, environment: str | None) -> Target:
        """The target `actor` asks to deploy, if they may; else a refusal that tells no more
        than the bots this person may deploy here."""
        target = self.target_here(actor, bot_name, environment)
        if target is None:
            raise UserError(self._unknown(actor, bot_name, environment))
        if not self.policy.may_deploy(actor, target):
            raise UserError(
                f"You may not deploy **{target.name}**: that takes the admin role or Manage "
                "Server in this server, or a role or user named by its target."
            )
        return target

    def deployable_names(self, actor: Actor) -> list[str]:
        return sorted(t.name for t in self.policy.deployable(actor, self.targets()))

    def _targets_offered(self, actor: Actor, *, to_deploy: bool) -> list[Target]:
        """The targets `actor` may deploy, or all of this server's; none where commands
        are not enabled for them."""
        if not self.is_enabled(actor):
            return []
        if to_deploy:
            return self.policy.deployable(actor, self.targets())
        return [t for t in self.targets() if self.policy.belongs_here(actor, t)]

    def names_offered(self, actor: Actor, *, to_deploy: bool) -> list[str]:
        """The bot names autocomplete offers (a bot with environments once)."""
        return sorted({t.bot_name for t in self._targets_offered(actor, to_deploy=to_deploy)})

    def environments_offered(self, actor: Actor, bot_name: str, *, to_deploy: bool) -> list[str]:
        """The environments of `bot_name` autocomplete offers `actor`."""
        return sorted(
            t.environment
            for t in self._targets_offered(actor, to_deploy=to_deploy)
            if t.bot_name == bot_name and t.environment is not None
        )

    def may_see(self, actor: Actor, record: DeploymentRecord) -> bool:
        return self.policy.may_see(actor, record, self.target_of(record.bot_name))

    def may_control(self, actor: Actor, record: DeploymentRecord) -> bool:
        return self.policy.may_control(actor, record, self.target_of(record.bot_name))

    def may_read_logs(self, actor: Actor, target: Target, made_by: DeploymentRecord | None) -> bool:
        """A release's log: for whoever may control the deployment that made it (`made_by`),
        and for the admins of the bot's servers."""
        if self.policy.may_control_bot(actor, target):
            return True
        return made_by is not None and self.may_control(actor, made_by)

    def _unknown(self, actor: Actor, bot_name: str, environment: str | None) -> str:
        names = self.deployable_names(actor)
        listed = ", ".join(names[:NAMES_LISTED]) or "none"
        if len(names) > NAMES_LISTED:
            listed += f" and {len(names) - NAMES_LISTED} more"
        asked = bot_name if environment is None else f"{bot_name} in {environment}"
        return f"Unknown bot {quoted(asked)}: you may deploy {listed} here."
