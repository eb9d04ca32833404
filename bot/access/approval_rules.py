"""Who may approve or reject a deployment that awaits approval (the Approve / Reject buttons)."""

from __future__ import annotations

from bot.access.policy import AccessPolicy, Actor
from bot.render import STATE_WORDS
from storage import DeploymentRecord
from workflows.models import DeploymentState, DeploymentStatus, is_snowflake
from workflows.targets import Target

DECISIONS = ("approve", "reject")


def role_label(role: str) -> str:
    """A role as Discord shows it: a mention for an id, the name in bold otherwise."""
    return f"<@&{role}>" if is_snowflake(role) else f"**{role}**"


def approval_role(status: DeploymentStatus | None, target: Target | None) -> str | None:
    """The role this deployment waits for: the one its workflow took from the targets file
    when it started (a later edit of the file does not move the gate), else the file's."""
    if status is not None and status.approval_role:
        return status.approval_role
    if target is not None and target.approval is not None:
        return target.approval.role
    return None


def refusal(
    policy: AccessPolicy,
    actor: Actor,
    record: DeploymentRecord,
    target: Target | None,
    status: DeploymentStatus | None,
    action: str,
) -> str | None:
    """Why `actor` may not `action` (approve or reject) this deployment; None if they may."""
    workflow_id = record.workflow_id
    if target is None or not policy.belongs_here(actor, target):
        return f"`{workflow_id}` belongs to a bot of another server: it is approved there."
    role = approval_role(status, target)
    if role is None:
        return f"**{record.bot_name}** does not require approval."
    if actor.user_id == record.owner_id or (status is not None and actor.user_id == status.owner):
        return (
            f"You asked for `{workflow_id}`, so someone else must {action} it "
            f"(a member with the role {role_label(role)})."
        )
    if not actor.has_role(role):
        return f"Only members with the role {role_label(role)} may {action} `{workflow_id}`."
    if status is None:
        return (
            f"No worker answers for `{workflow_id}` yet (restarting?), so its state is "
            "unknown: try again in a moment."
        )
    if status.state is not DeploymentState.AWAITING_APPROVAL:
        decided = status.approval
        if decided is not None and decided.by:
            by = f"<@{decided.by}>" if is_snowflake(decided.by) else decided.by
            return f"`{workflow_id}` was already {decided.decision} by {by}."
        return f"`{workflow_id}` is not awaiting approval (it is {STATE_WORDS[status.state]})."
    return None
