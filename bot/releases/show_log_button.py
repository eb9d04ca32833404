"""The "Show log" button on the final card of a deployment that failed after starting a
release: the redacted tail of that release's output, shown only to the person who clicked,
if they may read it (the same rule as /logs)."""

from __future__ import annotations

from typing import Any

import discord

from bot.access.installation_access import Access
from bot.access.policy import Actor
from bot.interactions.user_answers import UserError, reply, report_unexpected
from bot.releases.log_delivery import send_release_log
from storage import Storage
from workflows.release_reading import HostReleases, ReleasesUnreadable

_TEMPLATE = r"shipcord:log:(?P<workflow_id>[\w.:-]{1,80})"


class ShowLogButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=_TEMPLATE):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                label="Show log",
                emoji="📄",
                custom_id=f"shipcord:log:{workflow_id}",
            )
        )
        self.workflow_id = workflow_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> ShowLogButton:
        return cls(match["workflow_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        # The client's parts, looked up by name: importing the client would be a cycle.
        access = getattr(interaction.client, "access", None)
        storage = getattr(interaction.client, "storage", None)
        releases = getattr(interaction.client, "releases", None)
        if not (
            isinstance(access, Access)
            and isinstance(storage, Storage)
            and isinstance(releases, HostReleases)
        ):
            raise TypeError("the client that registered this button cannot read logs")
        actor = Actor.of(interaction)
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            access.require_enabled(actor)
            record = await storage.get_deployment(self.workflow_id)
            target = access.target_of(record.bot_name) if record is not None else None
            release = None
            if record is not None and target is not None and access.may_see(actor, record):
                made = [
                    r for r in await releases.list(target) if r.workflow_id == record.workflow_id
                ]
                release = made[0] if made else None
            if release is None:
                raise UserError(f"No release log for `{self.workflow_id[:100]}` in this server.")
            await send_release_log(
                interaction, actor, release, access=access, storage=storage, releases=releases
            )
        except (UserError, ReleasesUnreadable) as refusal:
            await reply(interaction, str(refusal))
        except Exception as error:
            await report_unexpected(interaction, error)


def log_view(workflow_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ShowLogButton(workflow_id))
    return view
