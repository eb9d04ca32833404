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
# Seconds a step of the start may take before the interaction is acknowledged privately.
ANSWER_GUARD = 1.5
# Seconds Temporal has to start the reserved deployment before the answer goes out anyway.
START_PATIENCE = 0.1


class DeployAnswer:
    """The answer to one /deploy."""

    def __init__(self, interaction: discord.Interaction[Any], board: ProgressBoard) -> None:
        self._interaction = interaction
        self._board = board
        self._responding = asyncio.Lock()  # one first response: a defer, or the answer
        self._sending: asyncio.Future[ReplyMessage | None] | None = None
        self._card: Card | None = None

    async def in_time(self, work: Awaitable[T]) -> T:
        """Await `work`; if it takes longer than `ANSWER_GUARD`, acknowledge privately
        meanwhile (Discord wants an answer within 3 s)."""
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=ANSWER_GUARD)
            if not done:
                async with self._responding:
                    if self._sending is None and not self._interaction.response.is_done():
                        await self._interaction.response.defer(ephemeral=True, thinking=True)
            return await task
        except BaseException:
            task.cancel()
            raise

    async def while_starting(self, record: DeploymentRecord, start: Awaitable[None]) -> None:
        """Await the workflow's start; if it takes longer than `START_PATIENCE`, the
        progress message goes out meanwhile (and is retracted if the start fails)."""
        task = asyncio.ensure_future(start)
        try:
            done, _ = await asyncio.wait({task}, timeout=START_PATIENCE)
            if not done:
                self._card = self._board.card_for(record)
                self._sending = asyncio.ensure_future(self._send(record, self._card))
            await task
        except BaseException:
            task.cancel()
            raise

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
