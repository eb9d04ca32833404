"""The deployment engine: botDeploymentWorkflow, its activities and the worker."""

from workflows.models import (
    DEFAULT_TASK_QUEUE,
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
    STATUS_QUERY,
    WORKFLOW_NAME,
    DeploymentInput,
    DeploymentResult,
    DeploymentState,
    DeploymentStatus,
    Step,
    deployment_workflow_id,
)

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "PAUSE_SIGNAL",
    "RESUME_SIGNAL",
    "STATUS_QUERY",
    "WORKFLOW_NAME",
    "DeploymentInput",
    "DeploymentResult",
    "DeploymentState",
    "DeploymentStatus",
    "Step",
    "deployment_workflow_id",
]
