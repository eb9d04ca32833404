"""The yardstick of the engine benchmark: a bare temporalio workflow of no-op activities.

It does what Temporal does for any workflow of that many steps and nothing else, so the
difference to a shipcord deployment of as many steps is shipcord's own work.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

BARE_WORKFLOW = "bareStepsWorkflow"


@activity.defn(name="bareNoop")
async def noop() -> None:
    return None


@workflow.defn(name=BARE_WORKFLOW)
class BareStepsWorkflow:
    @workflow.run
    async def run(self, steps: int) -> bool:
        for _ in range(steps):
            await workflow.execute_activity(noop, start_to_close_timeout=timedelta(minutes=5))
        return True
