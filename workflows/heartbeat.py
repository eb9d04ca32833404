"""Every activity heartbeats while it runs, so a worker that dies is noticed in seconds."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

HEARTBEAT_TIMEOUT = timedelta(seconds=10)
HEARTBEAT_EVERY = 2.0


class AutoHeartbeat(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _HeartbeatingActivity(next)


class _HeartbeatingActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if activity.info().is_local:
            # It runs inside its workflow's task, which its worker keeps alive instead.
            return await super().execute_activity(input)
        # Created inside the activity's context, so activity.heartbeat() knows the activity.
        beating = asyncio.create_task(beat_forever())
        try:
            return await super().execute_activity(input)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


async def beat_forever() -> None:
    # The timeout counts from the activity's start, so the first beat can wait too: an
    # activity shorter than the period (most of them) costs the server no heartbeat call.
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        activity.heartbeat()
