"""Every log line an activity writes carries the deployment it works for."""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class ActivityLogContext(Interceptor):
    """Binds workflow_id, activity and attempt (and the bot, when known) for each activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BoundActivity(next)


class _BoundActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        ids: dict[str, Any] = {
            "workflow_id": info.workflow_id,
            "activity": info.activity_type,
            "attempt": info.attempt,
        }
        bot_name = getattr(input.args[0], "bot_name", None) if input.args else None
        if bot_name:
            ids["bot_name"] = bot_name
        # Each activity runs in its own task, so these bindings end with it.
        with structlog.contextvars.bound_contextvars(**ids):
            return await super().execute_activity(input)
