"""What the workflow hands each activity and gets back: one model in, one model out."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.models import ReleaseNumber
from workflows.targets import ApprovalRule, Target


class DeploymentRef(BaseModel):
    """The deployment asked for: what `validate_deployment` checks."""

    workflow_id: str
    bot_name: str
    version: str
    restore_release: ReleaseNumber | None = None


class ValidatedDeployment(BaseModel):
    """What will be deployed: the target and version (a rollback's are those recorded
    with the release it restores), and the approval the targets file asks for now."""

    target: Target
    version: str
    approval: ApprovalRule | None = None
    restored_release: int | None = None
    bot_user_id: str
    application_id: str
    # Where the release runs, and how long its activities wait for a worker there; absent
    # in histories from before hosts, whose activities all ran on the shared queue.
    host: str | None = None
    host_start_timeout: float | None = None


class RecallInput(BaseModel):
    """A rollback: the earlier release to put back, read from its host's records."""

    bot_name: str
    release_number: ReleaseNumber


class RecalledRelease(BaseModel):
    target: Target
    version: str


class CreateReleaseInput(BaseModel):
    workflow_id: str
    version: str
    target: Target


class ReleaseInfo(BaseModel):
    bot_id: str
    release_number: int
    previous_release_number: int | None = None


class ReleaseRef(BaseModel):
    """The release a deployment created; activities read the rest from its record."""

    workflow_id: str
    bot_name: str


class StepReport(BaseModel):
    """What a compensation did, in a sentence a person reads in the failure notice."""

    summary: str
