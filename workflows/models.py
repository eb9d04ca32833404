"""The workflow's contract: one model in, one model out, camelCase on the wire.

Any Temporal client (the TypeScript guide's, with its plain JSON converter) can send
`{"botName": ..., "botType": ..., "config": {...}, "owner": ...}` and read these back as
plain JSON; shipcord's own clients use these models with `pydantic_data_converter`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

WORKFLOW_NAME = "botDeploymentWorkflow"
STATUS_QUERY = "status"
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
DEFAULT_TASK_QUEUE = "opencell-tasks"
DEFAULT_VERSION = "latest"
# Keys a hand-written client may put in `config` that must never be echoed anywhere.
SECRET_CONFIG_KEYS = frozenset({"token", "botToken", "bot_token", "secret", "password"})


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class DeploymentState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (self.SUCCEEDED, self.FAILED, self.CANCELLED)


class Step(StrEnum):
    """Each step as `status` reports it; the value is the step's wording."""

    STARTING = "Starting"
    VALIDATING = "Validating configuration"
    CREATING_RECORD = "Creating bot record"
    DEPLOYING = "Deploying to platform"
    HEALTH_CHECK = "Running health check"
    DEPLOYED = "Deployed"
    ROLLING_BACK = "Rolling back"
    ROLLED_BACK = "Rolled back"

    @property
    def progress(self) -> int:
        return STEP_PROGRESS[self]


STEP_PROGRESS: dict[Step, int] = {
    Step.STARTING: 0,
    Step.VALIDATING: 10,
    Step.CREATING_RECORD: 25,
    Step.DEPLOYING: 60,
    Step.HEALTH_CHECK: 85,
    Step.DEPLOYED: 100,
}


def deployment_workflow_id(bot_name: str, unix_ms: int) -> str:
    return f"deploy-{bot_name}-{unix_ms}"


class DeploymentInput(CamelModel):
    """What starts a deployment. Only botName and owner are required."""

    bot_name: str
    bot_type: str = "discord"
    config: dict[str, Any] = Field(default_factory=dict)
    owner: str
    version: str = DEFAULT_VERSION
    guild_id: str | None = None
    channel_id: str | None = None

    @field_validator("config")
    @classmethod
    def drop_secrets(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Tokens come from the targets file; one sent in the input is never used or kept."""
        return {key: value for key, value in config.items() if key not in SECRET_CONFIG_KEYS}

    @field_validator("owner", "guild_id", "channel_id", mode="before")
    @classmethod
    def ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class CompensationRecord(CamelModel):
    name: str
    ok: bool
    detail: str | None = None


class DeploymentStatus(CamelModel):
    """The answer to the `status` query."""

    step: str = Step.STARTING.value
    progress: int = 0
    state: DeploymentState = DeploymentState.RUNNING
    workflow_id: str = ""
    bot_name: str = ""
    version: str = DEFAULT_VERSION
    owner: str = ""
    guild_id: str | None = None
    channel_id: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    attempt: int | None = None
    last_error: str | None = None
    release_number: int | None = None
    completed_steps: list[str] = Field(default_factory=list)
    compensations: list[CompensationRecord] = Field(default_factory=list)


class DeploymentResult(CamelModel):
    success: bool
    bot_id: str | None = None
    error: str | None = None
    state: DeploymentState = DeploymentState.SUCCEEDED
    release_number: int | None = None


# Activity inputs and outputs --------------------------------------------------------


class DeploymentRef(CamelModel):
    """Identifies the deployment an activity works on; activities read the rest from storage."""

    workflow_id: str
    bot_name: str
    version: str = DEFAULT_VERSION


class ValidatedDeployment(CamelModel):
    bot_name: str
    version: str
    runtime: str
    strategy: str
    bot_user_id: str
    application_id: str


class CreateRecordInput(CamelModel):
    workflow_id: str
    bot_name: str
    bot_type: str
    version: str
    runtime: str
    owner: str
    guild_id: str | None = None
    channel_id: str | None = None


class ReleaseInfo(CamelModel):
    bot_id: str
    release_number: int
    previous_release_number: int | None = None


class OutcomeInput(CamelModel):
    workflow_id: str
    state: DeploymentState
    error: str | None = None
