"""/deploy answers with the progress message itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord
import structlog

from bot.board.cards import Card
from bot.board.control_buttons import progress_view
from bot.board.progress_board import ProgressBoard
from bot.interactions.interaction_replies import ReplyMessage
from storage import DeploymentRecord
from workflows.models import DeploymentState

log = structlog.get_logger(__name__)

T = TypeVar("T")
NO_MENTIONS = discord.AllowedMentions.none()
# Seconds to wait for the deployment to be accepted before acknowledging privately.
ANSWER_GUARD = 1.5
# Seconds Temporal has, once the deployment is reserved, before the answer goes out anyway.
START_PATIENCE = 0.1


class DeployAnswer:
    """The answer to one /deploy."""

    def __init__(self, interaction: discord.Interaction[Any], board: ProgressBoard) -> None:
        self._interaction = interaction
        self._board = board
        self._responding = asyncio.Lock()  # one first response: a defer, or the answer
        self._sending: asyncio.Task[ReplyMessage | None] | None = None
        self._accepted = asyncio.Event()
        self._record: DeploymentRecord | None = None
        self._card: Card | None = None

    def accept(self, record: DeploymentRecord) -> None:
        """The deployment is reserved: its progress message may be shown."""
        self._record, self._card = record, self._board.card_for(record)
        self._accepted.set()

    async def starting(self, start: Awaitable[T]) -> T:
        """Await the start. Once accepted, answer after `START_PATIENCE` at the latest; if
        neither accepted nor refused within `ANSWER_GUARD`, acknowledge privately
        meanwhile (Discord's 3 s)."""
        task = asyncio.ensure_future(start)
        accepted = asyncio.ensure_future(self._accepted.wait())
        try:
            await asyncio.wait(
                {task, accepted}, timeout=ANSWER_GUARD, return_when=asyncio.FIRST_COMPLETED
            )
            if not task.done() and accepted.done():
                await asyncio.wait({task}, timeout=START_PATIENCE)
                if not task.done():
                    assert self._record is not None and self._card is not None
                    self._sending = asyncio.ensure_future(self._send(self._record, self._card))
            elif not task.done():
                async with self._responding:
                    if self._sending is None and not self._interaction.response.is_done():
                        await self._interaction.response.defer(ephemeral=True, thinking=True)
            return await task
        except BaseException:
            task.cancel()
            raise
        finally:
            accepted.cancel()

    async def started(self, record: DeploymentRecord) -> bool:
        """The workflow runs: hand the answer to the board, which keeps it up to date.
        False when Discord refused the answer (the board then posts one in the channel)."""
        if self._sending is None:
            self._card = self._board.card_for(record)
            self._sending = asyncio.ensure_future(self._send(record, self._card))
        assert self._card is not None
        message = await self._sending
        if message is None:
            return False
        await self._board.answered(
            record, interaction=self._interaction, message=message, card=self._card
        )
        return True

    async def retract(self) -> None:
        """The start failed after the answer went out: delete it before the refusal."""
        if self._sending is None:
            return
        message = await self._sending
        if message is None:
            return
        try:
            await message.delete()
        except discord.HTTPException as error:
            log.warning("deploy_answer_not_retracted", status=error.status, code=error.code)

    async def _send(self, record: DeploymentRecord, card: Card) -> ReplyMessage | None:
        view = progress_view(record.workflow_id, DeploymentState.RUNNING)
        assert view is not None
        interaction = self._interaction
        try:
            async with self._responding:
                if not interaction.response.is_done():
                    response = await interaction.response.send_message(
                        card.content,
                        embed=card.discord_embed(),
                        view=view,
                        allowed_mentions=NO_MENTIONS,
                    )
                    if isinstance(response.resource, discord.InteractionMessage):
                        return response.resource
                    return await interaction.original_response()
            # Acknowledged privately: say so there, then show the progress in public.
            await interaction.followup.send(
                f"Deploying **{record.bot_name}** `{record.version}` as "
                f"`{record.workflow_id}`; its progress follows in this channel.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            message: ReplyMessage = await interaction.followup.send(
                card.content,
                embed=card.discord_embed(),
                view=view,
                wait=True,
                allowed_mentions=NO_MENTIONS,
            )
            return message
        except discord.HTTPException as error:
            log.warning("deploy_answer_failed", status=error.status, code=error.code)
            return None
