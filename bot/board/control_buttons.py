"""Buttons on the progress message: Pause or Resume, and Cancel; Approve and Reject (and
Cancel) while a deployment awaits approval."""

from __future__ import annotations

from typing import Any

import discord

from bot.deployments.controls import Controller
from workflows.models import DeploymentState

CUSTOM_ID_PREFIX = "shipcord"
_ACTIONS = "pause|resume|cancel|approve|reject"
_TEMPLATE = rf"{CUSTOM_ID_PREFIX}:(?P<action>{_ACTIONS}):(?P<workflow_id>[\w.:-]{{1,80}})"

_STYLE = {
    "pause": (discord.ButtonStyle.secondary, "Pause", "⏸️"),
    "resume": (discord.ButtonStyle.success, "Resume", "▶️"),
    "cancel": (discord.ButtonStyle.danger, "Cancel", "🛑"),
    "approve": (discord.ButtonStyle.success, "Approve", "✅"),
    "reject": (discord.ButtonStyle.danger, "Reject", "✋"),
}


def custom_id(action: str, workflow_id: str) -> str:
    return f"{CUSTOM_ID_PREFIX}:{action}:{workflow_id}"


class DeploymentButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=_TEMPLATE
):
    def __init__(self, action: str, workflow_id: str) -> None:
        style, label, emoji = _STYLE[action]
        super().__init__(
            discord.ui.Button(
                style=style, label=label, emoji=emoji, custom_id=custom_id(action, workflow_id)
            )
        )
        self.action = action
        self.workflow_id = workflow_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> DeploymentButton:
        return cls(match["action"], match["workflow_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        controller = getattr(interaction.client, "controller", None)
        if not isinstance(controller, Controller):
            raise TypeError("the client that registered these buttons has no controller")
        await controller.run_interaction(interaction, self.action, self.workflow_id)


def progress_view(workflow_id: str, state: DeploymentState) -> discord.ui.View | None:
    """The buttons that make sense in `state`; None (no buttons) once nothing can be done."""
    if state is DeploymentState.RUNNING:
        actions = ["pause", "cancel"]
    elif state is DeploymentState.PAUSED:
        actions = ["resume", "cancel"]
    elif state is DeploymentState.AWAITING_APPROVAL:
        # Who may click which is the controller's business: the buttons are the same for all.
        actions = ["approve", "reject", "cancel"]
    else:
        return None
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(DeploymentButton(action, workflow_id))
    return view
