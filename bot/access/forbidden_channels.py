"""Channels the bot may not post in, learnt from Discord's 403s and skipped from then on."""

from __future__ import annotations

import structlog

log = structlog.get_logger(__name__)


class ForbiddenChannels:
    def __init__(self) -> None:
        self._ids: set[str] = set()

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._ids

    def add(self, channel_id: str) -> None:
        if channel_id not in self._ids:
            self._ids.add(channel_id)
            log.warning("progress_channel_forbidden", channel_id=channel_id)
