"""The options people type, parsed and offered in one place each (discord.py transformers):
a bot to deploy, a bot of this server, a version, a start time, a deployment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import discord
from discord import app_commands

from bot.access.installation_access import Access
from bot.access.policy import Actor
from bot.autocomplete import deployment_choices, name_choices
from bot.deployments.schedule_time import BadTime, parse_when
from bot.discord_client import ShipcordBot
from bot.interactions.user_answers import UserError
from storage import DeploymentRecord
from workflows.models import validate_version
from workflows.targets import Target

# Every command that takes a bot's environment describes it so.
ENVIRONMENT_OPTION = "The bot's environment, when it has several"
# How many recent deployments /status offers.
RECENT_LIMIT = 200


# What a transformer's autocomplete answers (discord.py types it for every option type).
Choice = app_commands.Choice[int | float | str]


def offered(choices: Sequence[app_commands.Choice[Any]]) -> list[Choice]:
    return cast(list[Choice], list(choices))


def shipcord(interaction: discord.Interaction[Any]) -> ShipcordBot:
    client = interaction.client
    if not isinstance(client, ShipcordBot):
        raise TypeError("shipcord's commands belong to a ShipcordBot")
    return client


def _access(interaction: discord.Interaction[Any]) -> Access:
    return shipcord(interaction).access


def environment_asked(interaction: discord.Interaction[Any]) -> str | None:
    """The command's `environment` option as typed (None: not given, or no such option)."""
    typed = getattr(interaction.namespace, "environment", None)
    return typed.strip() or None if isinstance(typed, str) else None


class _BotName(app_commands.Transformer):
    """A bot named in the targets file, offered and resolved for what the person may do:
    to its target in the command's `environment` (or its own or default one)."""

    to_deploy = False

    async def transform(self, interaction: discord.Interaction[Any], value: str) -> Target:
        actor, access = Actor.of(interaction), _access(interaction)
        access.require_enabled(actor)
        name, environment = value.strip(), environment_asked(interaction)
        if self.to_deploy:
            deployable: Target = access.target_to_deploy(actor, name, environment)
            return deployable
        here = access.target_here(actor, name, environment)
        if here is None:
            asked = name if environment is None else f"{name} in {environment}"
            raise UserError(f"There is no bot {asked[:60]!r} in this server.")
        return here

    async def autocomplete(
        self, interaction: discord.Interaction[Any], value: int | float | str
    ) -> list[Choice]:
        access = _access(interaction)
        names = access.names_offered(Actor.of(interaction), to_deploy=self.to_deploy)
        return offered(name_choices(names, str(value)))


class DeployableBot(_BotName):
    """A bot this person may deploy here, resolved to its target."""

    to_deploy = True


class BotOfThisServer(_BotName):
    """A bot that belongs to this server, whoever may deploy it, resolved to its target."""


class PromotableBot(app_commands.Transformer):
    """A bot with environments this person may deploy to (its name: /promote names the two
    environments)."""

    async def transform(self, interaction: discord.Interaction[Any], value: str) -> str:
        _access(interaction).require_enabled(Actor.of(interaction))
        return value.strip()

    async def autocomplete(
        self, interaction: discord.Interaction[Any], value: int | float | str
    ) -> list[Choice]:
        actor, access = Actor.of(interaction), _access(interaction)
        names = [
            name
            for name in access.names_offered(actor, to_deploy=True)
            if access.environments_offered(actor, name, to_deploy=True)
        ]
        return offered(name_choices(names, str(value)))


class _BotEnvironment(app_commands.Transformer):
    """An environment of the command's bot; the bot option resolves the two together."""

    to_deploy = False

    async def transform(self, interaction: discord.Interaction[Any], value: str) -> str:
        return value.strip()

    async def autocomplete(
        self, interaction: discord.Interaction[Any], value: int | float | str
    ) -> list[Choice]:
        typed_bot = getattr(interaction.namespace, "bot", None)
        bot_name = typed_bot.strip() if isinstance(typed_bot, str) else ""
        names = _access(interaction).environments_offered(
            Actor.of(interaction), bot_name, to_deploy=self.to_deploy
        )
        return offered(name_choices(names, str(value)))


class DeployableEnvironment(_BotEnvironment):
    """An environment of the bot this person may deploy to."""

    to_deploy = True


class EnvironmentOfThisServer(_BotEnvironment):
    """An environment of the bot that belongs to this server."""


class DeployVersion(app_commands.Transformer):
    async def transform(self, interaction: discord.Interaction[Any], value: str) -> str:
        try:
            return validate_version(value.strip())
        except ValueError as error:
            raise UserError(str(error)) from None


class StartTime(app_commands.Transformer):
    """When a scheduled deployment starts: a delay, a UTC time of day, or a date."""

    async def transform(self, interaction: discord.Interaction[Any], value: str) -> datetime | None:
        if not value.strip():
            return None
        try:
            return parse_when(value)
        except BadTime as error:
            raise UserError(str(error)) from None


class VisibleDeployment(app_commands.Transformer):
    """A recent deployment this person may see, open ones first (its id)."""

    async def transform(self, interaction: discord.Interaction[Any], value: str) -> str:
        return value

    async def autocomplete(
        self, interaction: discord.Interaction[Any], value: int | float | str
    ) -> list[Choice]:
        actor, bot = Actor.of(interaction), shipcord(interaction)
        if not bot.access.is_enabled(actor):
            return []
        return offered(deployment_choices(await self.offered(bot, actor), str(value)))

    async def offered(self, bot: ShipcordBot, actor: Actor) -> list[DeploymentRecord]:
        records = await bot.storage.list_deployments(limit=RECENT_LIMIT)
        visible = [record for record in records if bot.access.may_see(actor, record)]
        return sorted(visible, key=lambda record: not record.is_open)


class ControllableDeployment(VisibleDeployment):
    """An open deployment this person may pause, resume or cancel (its id)."""

    async def offered(self, bot: ShipcordBot, actor: Actor) -> list[DeploymentRecord]:
        records = await bot.storage.list_open_deployments()
        return [record for record in records if bot.access.may_control(actor, record)]
