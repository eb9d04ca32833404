"""Autocomplete choices: what a person may pick, filtered by what they typed."""

from __future__ import annotations

from discord import app_commands

from bot.releases.release_rules import release_label
from storage import DeploymentRecord, ReleaseRecord

# Discord shows at most 25 choices.
MAX_CHOICES = 25


def name_choices(names: list[str], current: str) -> list[app_commands.Choice[str]]:
    typed = current.lower().strip()
    matching = [name for name in names if typed in name.lower()]
    return [app_commands.Choice(name=name, value=name) for name in matching[:MAX_CHOICES]]


def deployment_choices(
    records: list[DeploymentRecord], current: str
) -> list[app_commands.Choice[str]]:
    typed = current.lower().strip()
    choices = []
    for record in records:
        if typed and typed not in record.workflow_id.lower():
            continue
        label = f"{record.workflow_id} · {record.bot_name} {record.version} · {record.state}"
        choices.append(app_commands.Choice(name=label[:100], value=record.workflow_id))
    return choices[:MAX_CHOICES]


def release_choices(releases: list[ReleaseRecord], current: str) -> list[app_commands.Choice[int]]:
    """Newest first; what is typed matches the number or the version."""
    typed = current.strip().lstrip("#").lower()
    matching = [
        release
        for release in sorted(releases, key=lambda release: release.number, reverse=True)
        if not typed or typed in str(release.number) or typed in release.version.lower()
    ]
    return [
        app_commands.Choice(name=release_label(release), value=release.number)
        for release in matching[:MAX_CHOICES]
    ]
