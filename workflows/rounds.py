"""Work done in rounds in the background, every `interval` seconds, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class Rounds:
    def __init__(
        self,
        name: str,
        one_round: Callable[[], Awaitable[object]],
        *,
        interval: float,
        failure_event: str,
        first_wait_for: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._name = name
        self._one_round = one_round
        self._interval = interval
        self._failure_event = failure_event
        self._first_wait_for = first_wait_for
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if self._first_wait_for is not None:
            await self._first_wait_for()
        while True:
            try:
                await self._one_round()
            except Exception:
                log.exception(self._failure_event)
            await asyncio.sleep(self._interval)
