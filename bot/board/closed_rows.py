"""A deployment row read back: how a closed one ended, from what the front end recorded."""

from __future__ import annotations

from pydantic import ValidationError

from storage import DeploymentRecord
from workflows.models import DeploymentResult, DeploymentState


def closed_result(record: DeploymentRecord) -> DeploymentResult:
    """The workflow's result as recorded when the row was closed (its final state included)."""
    if record.result:
        try:
            return DeploymentResult.model_validate_json(record.result)
        except ValidationError:
            pass
    try:
        state = DeploymentState(record.state)
    except ValueError:
        state = DeploymentState.FAILED
    if not state.is_final:
        state = DeploymentState.FAILED
    return DeploymentResult(
        success=state is DeploymentState.SUCCEEDED, state=state, error=record.error
    )
