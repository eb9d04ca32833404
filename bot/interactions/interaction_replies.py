"""Progress messages that are /deploy's own answer, edited through the interaction's webhook."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import discord

# Discord's lifetime of an interaction token.
TOKEN_LIFETIME = timedelta(minutes=15)
# Stop using a token this long before it expires: an edit may wait in its bucket, and
# one that arrives late would fail and have to go again by the channel route.
MARGIN = timedelta(minutes=1)

# discord.InteractionMessage or discord.WebhookMessage: `.edit()` goes by the webhook.
ReplyMessage = Any


@dataclass(frozen=True)
class InteractionReply:
    message: ReplyMessage
    bucket: str  # names the token's rate-limit bucket without being the token
    usable_until: float  # time.monotonic()

    @property
    def usable(self) -> bool:
        return time.monotonic() < self.usable_until


class InteractionReplies:
    """The live interaction replies, by workflow id."""

    def __init__(self, *, lifetime: timedelta = TOKEN_LIFETIME, margin: timedelta = MARGIN) -> None:
        self._lifetime = lifetime
        self._margin = margin
        self._replies: dict[str, InteractionReply] = {}

    def add(
        self, workflow_id: str, interaction: discord.Interaction[Any], message: ReplyMessage
    ) -> None:
        created = interaction.created_at
        age = (datetime.now(UTC) - created).total_seconds()
        left = (self._lifetime - self._margin).total_seconds() - max(0.0, age)
        self._replies[workflow_id] = InteractionReply(
            message=message,
            bucket=f"interaction:{interaction.id}",
            usable_until=time.monotonic() + left,
        )

    def get(self, workflow_id: str) -> InteractionReply | None:
        """The reply while its token may still be used; None (and forgotten) after."""
        reply = self._replies.get(workflow_id)
        if reply is not None and not reply.usable:
            del self._replies[workflow_id]
            return None
        return reply

    def drop(self, workflow_id: str) -> None:
        self._replies.pop(workflow_id, None)

    def __len__(self) -> int:
        return len(self._replies)
