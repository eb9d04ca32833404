"""A deployment that an older shipcord validated goes on after the upgrade (live).

tests/replay checks that old histories replay; this checks what such a deployment does
once its history is behind it: validated by c107ed9 (a result without a target) and
waiting before "Creating bot record", it validates again and deploys as today's do.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType

from tests.engine.harness import Engine
from workflows.activities import DeploymentActivities
from workflows.activity_models import DeploymentRef

StartEngine = Callable[..., AbstractAsyncContextManager[Engine]]


async def test_a_deployment_validated_before_recorded_targets_validates_again(
    start_engine: StartEngine,
) -> None:
    asked: list[DeploymentRef] = []

    def as_c107ed9_did(activities: DeploymentActivities) -> Callable[..., Any]:
        @activity.defn(name="validate_deployment")
        async def validate_deployment(ref: DeploymentRef) -> Any:
            asked.append(ref)
            if len(asked) > 1:
                return await activities.validate_deployment(ref)
            # c107ed9's ValidatedDeployment, as it wrote it (camelCase, no target).
            return {
                "botName": ref.bot_name,
                "version": ref.version,
                "runtime": "process",
                "strategy": "replace",
                "botUserId": "100000000000000001",
                "applicationId": "100000000000000002",
            }

        return validate_deployment

    async with start_engine(replace={"validate_deployment": as_c107ed9_did}) as engine:
        workflow_id = await engine.deploy("echo", "1.0.0")
        result = await engine.deployments.result(workflow_id)
        assert result.success, result.error
        assert result.host == "local"
        assert await engine.scheduled_activities(workflow_id) == [
            "validate_deployment",
            "validate_deployment",
            # The token, read on the release's host (the `token-on-host` patches).
            "check_bot_token",
            "create_bot_record",
            "deploy_to_platform",
            "run_health_check",
            "finish_deployment",
        ]
        history = await engine.client.get_workflow_handle(workflow_id).fetch_history()
        markers = [
            event.marker_recorded_event_attributes.SerializeToString()
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        ]
        patches = [marker for marker in markers if b"core_patch" in marker]
        assert len(patches) == 4
        assert b'"token-on-host"' in patches[0]
        assert b'"local-steps"' in patches[1]
        assert b"before-recorded-targets/create_bot_record" in patches[2]
        assert b"token-on-host/revalidated" in patches[3]
    assert len(asked) == 2
    # Validated again on the shared queue without its token, which its host checks.
    assert asked[1].checked_on_host
