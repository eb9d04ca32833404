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


class _BotName(app_commands.Transformer):
    """A bot named in the targets file, offered and resolved for what the person may do."""

    to_deploy = False

    async def transform(self, interaction: discord.Interaction[Any], value: str) -> Target:
        actor, access = Actor.of(interaction), _access(interaction)
        access.require_enabled(actor)
        name = value.strip()
        if self.to_deploy:
            deployable: Target = access.target_to_deploy(actor, name)
            return deployable
        target: Target | None = access.target_of(name)
        if target is None or not access.policy.belongs_here(actor, target):
            raise UserError(f"There is no bot {name[:40]!r} in this server.")
        return target

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
