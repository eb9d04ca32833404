"""The workflow's contract: one model in, one model out, camelCase on the wire."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

WORKFLOW_NAME = "botDeploymentWorkflow"
STATUS_QUERY = "status"
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
APPROVE_SIGNAL = "approve"
REJECT_SIGNAL = "reject"
# The controls as updates: the workflow accepts or refuses, and answers with its status.
PAUSE_UPDATE = "pauseDeployment"
RESUME_UPDATE = "resumeDeployment"
APPROVE_UPDATE = "approveDeployment"
REJECT_UPDATE = "rejectDeployment"
# Each control's update, and the signal that stands in for it while no worker answers.
STEERING = {
    "pause": (PAUSE_UPDATE, PAUSE_SIGNAL),
    "resume": (RESUME_UPDATE, RESUME_SIGNAL),
    "approve": (APPROVE_UPDATE, APPROVE_SIGNAL),
    "reject": (REJECT_UPDATE, REJECT_SIGNAL),
}
# The error type of a refused update; its details are the reason and the state.
CONTROL_REFUSED = "ControlRefused"
DEFAULT_TASK_QUEUE = "opencell-tasks"
DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_VERSION = "latest"
# Keys a hand-written client may put in `config` that must never be echoed anywhere.
SECRET_CONFIG_KEYS = frozenset({"token", "botToken", "bot_token", "secret", "password"})

BOT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# An environment of a bot ("staging"); the bot's target in it is named "bot.environment",
# a name Docker and file names take as it is.
ENVIRONMENT = re.compile(r"[a-z0-9][a-z0-9-]{0,19}")
VERSION = re.compile(
    r"latest|v?[0-9]{1,9}(\.[0-9]{1,9}){0,3}([-+][0-9A-Za-z][0-9A-Za-z.+-]{0,40})?"
)
SNOWFLAKE = re.compile(r"[1-9][0-9]{5,19}")
# Discord ids are unsigned 64-bit numbers; twenty digits can spell more.
SNOWFLAKE_MAX = 2**64 - 1
# The guide's own example owner is "user-123": an owner that is not a Discord user id is a
# label from another system, shown as text and never mentioned or sent a DM.
OWNER = re.compile(r"[A-Za-z0-9_.@:+-]{1,64}")


def is_snowflake(value: str | None) -> bool:
    return (
        value is not None and SNOWFLAKE.fullmatch(value) is not None and int(value) <= SNOWFLAKE_MAX
    )


def canonical_snowflake(value: Any) -> str | None:
    """The Discord id `value` is, spelled as Discord spells it, or None if it is not one.

    Strict: a number, or a text of digits only with no leading zero; "0123…" or " 123…"
    is not an id, whoever sends it.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        # Range first: str() of a huge int is slow, and refused beyond 4300 digits.
        value = str(value) if 0 < value <= SNOWFLAKE_MAX else None
    return value if isinstance(value, str) and is_snowflake(value) else None


def id_number(value: Any) -> int | None:
    """The number `value` spells however it is written (an int, leading zeros, spaces
    around it), or None: to recognise one person's id in any spelling."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            digits = text.lstrip("0") or "0"
            # No id has more digits, and int() of a huge text is not worth its time.
            return int(digits) if len(digits) <= 20 else None
    return None


def quoted(text: str, limit: int = 40) -> str:
    """A user's text shown in a message: quoted, escaped and short, whatever it holds."""
    shown = repr(text[:limit])
    return shown if len(shown) <= limit + 12 else shown[: limit + 10] + "…'"


def _matching(text: str, pattern: re.Pattern[str], problem: str) -> str:
    if not pattern.fullmatch(text):
        raise ValueError(problem)
    return text


def _not_a_slug(what: str, name: str, longest: int) -> str:
    return (
        f"{what} {quoted(name)} is not valid: use 1-{longest} lowercase letters, digits and "
        "'-', starting with a letter or digit."
    )


def validate_bot_name(name: str) -> str:
    return _matching(name, BOT_NAME, _not_a_slug("Bot name", name, 32))


def validate_environment_name(name: str) -> str:
    return _matching(name, ENVIRONMENT, _not_a_slug("Environment", name, 20))


def unit_name(bot_name: str, environment: str | None) -> str:
    """The name of a bot's target in `environment`: what releases, locks and supervision
    are kept by."""
    return bot_name if environment is None else f"{bot_name}.{environment}"


def environment_of(name: str) -> str | None:
    """The environment a target name ("bot.environment") names, if any."""
    return name.partition(".")[2] or None


def validate_unit_name(name: str) -> str:
    bot_name, dot, environment = name.partition(".")
    validate_bot_name(bot_name)
    if dot:
        validate_environment_name(environment)
    return name


def validate_version(version: str) -> str:
    """Return the version if well formed, else raise ValueError saying what is expected."""
    return _matching(
        version,
        VERSION,
        f"Version {quoted(version)} is not well formed: use a release number such as "
        "1.4.0 or v2.0.1-rc.1, or 'latest'.",
    )


def validate_snowflake(value: str) -> str:
    if not is_snowflake(value):
        raise ValueError(f"{quoted(value, 30)} is not a Discord id (a number of 6 to 20 digits)")
    return value


def validate_owner(owner: str) -> str:
    if not OWNER.fullmatch(owner):
        raise ValueError("must be a Discord user id, or a label of 1-64 letters, digits and _.@:+-")
    return owner


def _number_as_text(value: Any) -> Any:
    # JSON and TOML carry Discord ids as numbers too. A huge number is left as it is, to
    # be refused as not text (str() of one is slow, and refused beyond 4300 digits).
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**64:
        return str(value)
    return value


# Release numbers count one bot's deployments: far below this, which every store and
# Discord's own integer options hold.
RELEASE_NUMBER_MAX = 2**31 - 1

# Lengths are bounded before any pattern is tried, and every number has a range.
BotName = Annotated[str, Field(max_length=64), AfterValidator(validate_bot_name)]
EnvironmentName = Annotated[str, Field(max_length=64), AfterValidator(validate_environment_name)]
Version = Annotated[str, Field(max_length=64), AfterValidator(validate_version)]
Snowflake = Annotated[
    str, BeforeValidator(_number_as_text), Field(max_length=32), AfterValidator(validate_snowflake)
]
Owner = Annotated[
    str, BeforeValidator(_number_as_text), Field(max_length=64), AfterValidator(validate_owner)
]
ReleaseNumber = Annotated[int, Field(ge=1, le=RELEASE_NUMBER_MAX)]


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
    AWAITING_APPROVAL = "awaiting_approval"
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


# deploy-{bot}-{ms} with a bot name's 32 characters and 20 digits at most: 60 characters,
# short enough for every custom_id a card's buttons carry (Discord allows 100).
MILLIS_DIGITS = re.compile(r"[0-9]{1,20}")


def is_adoptable_workflow_id(workflow_id: str, bot_name: str) -> bool:
    """Whether another client's workflow id is one shipcord shows: its bot's own form."""
    prefix = f"deploy-{bot_name}-"
    return (
        BOT_NAME.fullmatch(bot_name) is not None
        and workflow_id.startswith(prefix)
        and MILLIS_DIGITS.fullmatch(workflow_id[len(prefix) :]) is not None
    )


class DeploymentInput(CamelModel):
    """What starts a deployment. Only botName and owner are required."""

    bot_name: BotName
    bot_type: str = Field("discord", max_length=32)
    config: dict[str, Any] = Field(default_factory=dict)
    owner: Owner
    version: Version = DEFAULT_VERSION
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    # A rollback: put this earlier release of the bot back (its version and recorded
    # target) instead of deploying `version`.
    restore_release: ReleaseNumber | None = None
    # One of the bot's environments (absent: the bot's only or default one).
    environment: EnvironmentName | None = None

    @field_validator("config")
    @classmethod
    def drop_secrets(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Tokens come from the targets file; one sent in the input is never used or kept."""
        return {key: value for key, value in config.items() if key not in SECRET_CONFIG_KEYS}


class ApprovalRecord(CamelModel):
    """How the approval gate ended: approved or rejected by someone, or timed out."""

    decision: str  # "approved", "rejected" or "timed_out"
    by: str | None = None
    at: datetime | None = None


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
    previous_release_number: int | None = None
    restored_release: int | None = None
    completed_steps: list[str] = Field(default_factory=list)
    compensations: list[CompensationRecord] = Field(default_factory=list)
    # While awaiting approval: who may approve (a role) and until when; then the outcome.
    approval_role: str | None = None
    approval_deadline: datetime | None = None
    approval: ApprovalRecord | None = None
    # The host the release runs on, once validation has resolved it.
    host: str | None = None
    # The bot's environment: as asked, then as validation resolved it.
    environment: str | None = None


class DeploymentResult(CamelModel):
    """The workflow's result. `step` and `progress` are where it ended, exactly."""

    success: bool
    bot_id: str | None = None
    error: str | None = None
    state: DeploymentState = DeploymentState.SUCCEEDED
    release_number: int | None = None
    previous_release_number: int | None = None
    restored_release: int | None = None
    step: str | None = None
    progress: int | None = None
    compensations: list[CompensationRecord] = Field(default_factory=list)
    approval: ApprovalRecord | None = None
    host: str | None = None
    environment: str | None = None
    # What was deployed (a rollback's: the version of the release it put back).
    version: str | None = None
    # Never set by the workflow (so never in its result): how Temporal closed a workflow
    # that returned no result ("terminated", "timed_out", "cancelled", "failed"), as a
    # front end reading it records it.
    ended_by: str | None = Field(None, exclude_if=lambda value: value is None)

    @property
    def final_state(self) -> DeploymentState:
        if self.state.is_final:
            return self.state
        return DeploymentState.SUCCEEDED if self.success else DeploymentState.FAILED
