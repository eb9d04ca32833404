"""Writing progress messages, each by the route whose rate-limit bucket it should use."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from dataclasses import dataclass

import discord
import structlog

from bot.access.forbidden_channels import ForbiddenChannels
from bot.board.cards import Card
from bot.board.control_buttons import progress_view
from bot.frontend_meter import FrontEndMeter
from bot.interactions.interaction_replies import InteractionReplies, InteractionReply
from bot.pacing import Pacer, Priority
from bot.releases.show_log_button import log_view
from storage import DeploymentRecord, Storage

log = structlog.get_logger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
# Discord's code for a webhook it does not know (an interaction whose token is gone).
UNKNOWN_WEBHOOK = 10015
# How far back a lost progress message is looked for in its channel.
FIND_LIMIT = 50


class _Outcome(enum.Enum):
    EDITED = "edited"
    MISSING = "missing"  # the message was deleted
    REFUSED = "refused"  # the channel forbids it
    TOKEN_GONE = "token_gone"


@dataclass
class WriteCounts:
    posts: int = 0
    webhook_edits: int = 0
    channel_edits: int = 0

    @property
    def writes(self) -> int:
        return self.posts + self.webhook_edits + self.channel_edits


class ProgressMessages:
    def __init__(
        self,
        *,
        client: discord.Client,
        storage: Storage,
        channel_pacer: Pacer,
        interaction_pacer: Pacer,
        replies: InteractionReplies,
        forbidden: ForbiddenChannels,
        meter: FrontEndMeter,
    ) -> None:
        self._client = client
        self._storage = storage
        self.channel_pacer = channel_pacer
        self.interaction_pacer = interaction_pacer
        self.replies = replies
        self.forbidden = forbidden
        self._meter = meter
        self.counts = WriteCounts()

    def is_busy(self, workflow_id: str) -> bool:
        """True while an edit of this deployment's message waits or runs."""
        return self.channel_pacer.is_busy(workflow_id) or self.interaction_pacer.is_busy(
            workflow_id
        )

    def is_posting(self, workflow_id: str) -> bool:
        return self.channel_pacer.is_busy(f"{workflow_id}:post")

    # -- posting --------------------------------------------------------------------------

    async def post(self, record: DeploymentRecord, card: Card) -> discord.Message | None:
        """Post the message in the channel and store its id; None when that is not possible."""
        assert record.channel_id is not None
        channel_id = record.channel_id
        channel = self._channel(record)
        view = _view(record.workflow_id, card)

        async def send() -> discord.Message:
            self.counts.posts += 1
            if view is None:
                return await channel.send(
                    card.content, embed=card.discord_embed(), allowed_mentions=NO_MENTIONS
                )
            return await channel.send(
                card.content, embed=card.discord_embed(), view=view, allowed_mentions=NO_MENTIONS
            )

        try:
            message: discord.Message = await self.channel_pacer.submit(
                channel_id, f"{record.workflow_id}:post", send, priority=Priority.URGENT
            )
        except discord.Forbidden:
            self.forbidden.add(channel_id)
            return None
        except discord.HTTPException as error:
            log.warning("progress_post_failed", status=error.status, error=str(error))
            return None
        await self._storage.set_progress_message(
            record.workflow_id, channel_id=channel_id, message_id=str(message.id)
        )
        return message

    async def show_anew(
        self, record: DeploymentRecord, card: Card, priority: Priority, look_for_lost: bool
    ) -> bool:
        """Show `card` in a message of its own: the lost one found in the channel (when
        `look_for_lost`), else a new post; True once Discord has it."""
        try:
            found = await self.find(record) if look_for_lost else None
            if found is not None:
                lost = dataclasses.replace(record, message_id=str(found.id))
                return await self.edit(lost, card, priority)
            return await self.post(record, card) is not None
        except discord.HTTPException as error:
            log.warning("progress_message_not_shown", status=error.status, error=str(error))
            return False

    async def find(self, record: DeploymentRecord) -> discord.Message | None:
        """Our message about this deployment among the channel's latest: a crash between
        sending a message and storing its id leaves it unrecorded, not unsent."""
        me = self._client.user
        if record.channel_id is None or me is None:
            return None
        try:
            async for message in self._channel(record).history(limit=FIND_LIMIT):
                if (
                    message.author.id == me.id
                    and message.reference is None
                    and f"`{record.workflow_id}`" in message.content
                ):
                    await self._storage.set_progress_message(
                        record.workflow_id, channel_id=record.channel_id, message_id=str(message.id)
                    )
                    return message
        except discord.HTTPException as error:
            log.info("progress_message_search_failed", status=error.status)
        return None

    # -- editing --------------------------------------------------------------------------

    def edit(
        self, record: DeploymentRecord, card: Card, priority: Priority
    ) -> asyncio.Future[bool]:
        """Queue an edit of the deployment's message to `card`; the future says whether it
        was edited (False: the message is gone, or the channel forbids it)."""
        return asyncio.ensure_future(self._edit(record, card, priority))

    async def _edit(self, record: DeploymentRecord, card: Card, priority: Priority) -> bool:
        reply = self.replies.get(record.workflow_id)
        outcome: _Outcome | None = None
        if reply is not None:
            try:
                outcome = await self.interaction_pacer.submit(
                    reply.bucket,
                    record.workflow_id,
                    lambda: self._edit_reply(record.workflow_id, reply, card),
                    priority=priority,
                )
            except discord.HTTPException as refused:
                if record.channel_id is None or record.message_id is None:
                    raise
                # Discord refuses the webhook for now (its bucket, a 5xx): the channel's own
                # route may take the edit meanwhile; the webhook stays for the next one.
                log.info("progress_webhook_refused", status=refused.status)
            if outcome is _Outcome.TOKEN_GONE:
                self.replies.drop(record.workflow_id)
                outcome = None
        if outcome is None:
            if record.channel_id is None or record.message_id is None:
                return False
            outcome = await self.channel_pacer.submit(
                record.channel_id,
                record.workflow_id,
                lambda: self._edit_in_channel(record, card),
                priority=priority,
            )
        if outcome is _Outcome.MISSING:
            # The message was deleted: the next look posts it again, in the channel.
            log.info("progress_message_missing")
            self.replies.drop(record.workflow_id)
            await self._storage.clear_progress_message(record.workflow_id)
        if outcome is _Outcome.EDITED:
            self._meter.progress_edited()
        return outcome is _Outcome.EDITED

    async def _edit_reply(self, workflow_id: str, reply: InteractionReply, card: Card) -> _Outcome:
        if not reply.usable:
            return _Outcome.TOKEN_GONE
        self.counts.webhook_edits += 1
        try:
            await reply.message.edit(
                content=card.content,
                embed=card.discord_embed(),
                view=_view(workflow_id, card),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.NotFound as error:
            return _Outcome.TOKEN_GONE if error.code == UNKNOWN_WEBHOOK else _Outcome.MISSING
        except discord.HTTPException as error:
            if error.status == 401:  # the token expired early
                return _Outcome.TOKEN_GONE
            raise
        return _Outcome.EDITED

    async def _edit_in_channel(self, record: DeploymentRecord, card: Card) -> _Outcome:
        assert record.channel_id is not None and record.message_id is not None
        if record.channel_id in self.forbidden:
            return _Outcome.REFUSED
        message = self._channel(record).get_partial_message(int(record.message_id))
        self.counts.channel_edits += 1
        try:
            await message.edit(
                content=card.content,
                embed=card.discord_embed(),
                view=_view(record.workflow_id, card),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.NotFound:
            return _Outcome.MISSING
        except discord.Forbidden:
            self.forbidden.add(record.channel_id)
            return _Outcome.REFUSED
        return _Outcome.EDITED

    def _channel(self, record: DeploymentRecord) -> discord.PartialMessageable:
        assert record.channel_id is not None
        return self._client.get_partial_messageable(
            int(record.channel_id),
            guild_id=int(record.guild_id) if record.guild_id else None,
            type=discord.ChannelType.text,
        )


def _view(workflow_id: str, card: Card) -> discord.ui.View | None:
    if card.buttons_for:
        return progress_view(workflow_id, card.buttons_for)
    return log_view(workflow_id) if card.show_log else None
