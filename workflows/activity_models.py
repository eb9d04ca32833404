"""What the workflow hands each activity and gets back: one model in, one model out; they
gain fields only with defaults, so that histories of earlier versions decode."""

from __future__ import annotations

from pydantic import ConfigDict

from workflows.models import CamelModel, ReleaseNumber
from workflows.targets import ApprovalRule, Target


class ActivityModel(CamelModel):
    """Written with snake_case names; read with those or the camelCase ones of c107ed9."""

    model_config = ConfigDict(serialize_by_alias=False)


class DeploymentRef(ActivityModel):
    """The deployment asked for: what `validate_deployment` checks."""

    workflow_id: str
    bot_name: str
    version: str
    restore_release: ReleaseNumber | None = None
    # True: validation reads nothing that only the bot's host has (it runs on the shared
    # queue, where a worker holds only its own host's tokens and files): `check_bot_token`
    # reads the token and the command manifest on the host. False (the default) in
    # histories from before the `token-on-host` patch, whose validation read them itself.
    checked_on_host: bool = False
    # The bot's environment asked for (None: its own or default target).
    environment: str | None = None


class PromotionCheck(ActivityModel):
    """A deployment to an environment with `promote_from`: the version must be live in the
    source environment (`source`, a target name such as "echo.staging") and have run there
    for `soak` seconds without a crash. Checked on the source's host, which keeps its
    releases."""

    source: str
    source_host: str
    version: str
    soak: float = 0


class PromotedRelease(ActivityModel):
    """The source environment's release that may come: a docker one by its image digest."""

    image: str | None = None


class ValidatedDeployment(ActivityModel):
    """What will be deployed: the target and version (a rollback's are those recorded
    with the release it restores), and the approval the targets file asks for now."""

    # None only in histories from before the target travelled with the deployment
    # (c107ed9: botName, version, runtime, strategy, botUserId, applicationId); the
    # workflow then validates again or finishes as it began (workflows.deployment_workflow).
    target: Target | None = None
    version: str
    approval: ApprovalRule | None = None
    restored_release: int | None = None
    bot_user_id: str = ""
    application_id: str = ""
    # Where the release runs, and how long its activities wait for a worker there; absent
    # in histories from before hosts, whose activities all ran on the shared queue.
    host: str | None = None
    host_start_timeout: float | None = None
    # Set when the target takes only releases promoted from another environment.
    promotion: PromotionCheck | None = None


class TokenCheck(ActivityModel):
    """The target whose token `check_bot_token` reads with Discord, on the bot's host."""

    target: Target


class BotIdentity(ActivityModel):
    """Who the token belongs to, as Discord says."""

    bot_user_id: str
    application_id: str


class RecallInput(ActivityModel):
    """A rollback: the earlier release to put back, read from its host's records."""

    bot_name: str
    release_number: ReleaseNumber


class RecalledRelease(ActivityModel):
    target: Target
    version: str


class CreateReleaseInput(ActivityModel):
    workflow_id: str
    version: str
    # None: asked for by a workflow from before recorded targets (c107ed9), whose release
    # could never be stopped or restarted from its record; the activity refuses it.
    target: Target | None = None


class ReleaseInfo(ActivityModel):
    bot_id: str
    release_number: int
    previous_release_number: int | None = None


class ReleaseRef(ActivityModel):
    """The release a deployment created; activities read the rest from its record."""

    workflow_id: str
    bot_name: str
    # Its host, for a step tried as a local activity (which checks where it runs).
    host: str | None = None


class StepReport(ActivityModel):
    """What a compensation did, in a sentence a person reads in the failure notice."""

    summary: str
