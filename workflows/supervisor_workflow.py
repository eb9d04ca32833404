"""shipcordSupervisor: a long-running workflow that reconciles releases every few seconds."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.heartbeat import HEARTBEAT_TIMEOUT
    from workflows.supervision_rounds import (
        IncidentNote,
        SupervisionActivities,
        SupervisionSettings,
    )

SUPERVISOR_WORKFLOW = "shipcordSupervisor"
INCIDENTS_QUERY = "incidents"
# The incidents a front end with another database can still copy (it looks every few
# seconds; a round finds a handful at most).
INCIDENTS_KEPT = 50
ROUNDS_PER_RUN = 200
ROUND_TIMEOUT = timedelta(minutes=5)
ROUND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)


def supervisor_workflow_id(task_queue: str, host: str | None = None) -> str:
    """The supervisor of `host`; without a host, the one supervisor from before hosts."""
    if host is None:
        return f"shipcord-supervisor-{task_queue}"
    return f"shipcord-supervisor-{task_queue}@host-{host}"


@workflow.defn(name=SUPERVISOR_WORKFLOW)
class ReleaseSupervisorWorkflow:
    def __init__(self) -> None:
        self._incidents: list[IncidentNote] = []

    @workflow.query(name=INCIDENTS_QUERY)
    def incidents(self) -> list[IncidentNote]:
        """The latest incidents of this host: the host's own database has them all, the
        front end copies them from here (by key, so twice is once)."""
        return self._incidents

    @workflow.run
    async def run(
        self, settings: SupervisionSettings, incidents: list[IncidentNote] | None = None
    ) -> None:
        self._incidents = list(incidents or [])
        for _ in range(ROUNDS_PER_RUN):
            try:
                report = await workflow.execute_activity_method(
                    SupervisionActivities.reconcile,
                    settings,
                    task_queue=settings.task_queue,
                    start_to_close_timeout=ROUND_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=ROUND_RETRY,
                )
                self._incidents = (self._incidents + report.incidents)[-INCIDENTS_KEPT:]
            except ActivityError as error:
                workflow.logger.warning("Supervision round failed: %s", error.cause or error)
            await workflow.sleep(timedelta(seconds=settings.interval_seconds))
        workflow.continue_as_new(args=[settings, self._incidents])
