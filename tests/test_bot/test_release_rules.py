"""The rules behind approvals, /rollback and /logs as pure functions (end to end, they are
in test_approvals_and_releases)."""

from __future__ import annotations

import pytest

from bot.access.approval_rules import refusal
from bot.access.policy import AccessPolicy
from bot.board.cards import final_card, running_card
from bot.interactions.user_answers import UserError
from bot.releases.release_rules import INLINE_LOG_CHARS, choose_rollback, log_answer
from storage import ReleaseRecord
from tests.test_bot.test_permissions import OPS, OWNER, actor, target
from tests.test_bot.test_render import STARTED, make_record, make_status
from workflows.models import ApprovalRecord, DeploymentResult, DeploymentState
from workflows.release_logs import ReleaseLogTail

APPROVER_ROLE_ID = "444444444444444444"
POLICY = AccessPolicy(guild_ids=[OPS], admin_role=None)
GATED = target(approval={"role": "approvers", "timeout": "30m"})
AWAITING = make_status(
    state=DeploymentState.AWAITING_APPROVAL, owner=OWNER, approval_role="approvers"
)


def release(number: int, status: str, version: str = "1.0.0") -> ReleaseRecord:
    return ReleaseRecord(
        id=number,
        bot_name="echo",
        number=number,
        version=version,
        workflow_id=f"deploy-echo-{number}",
        previous_number=number - 1 or None,
        runtime="process",
        runtime_handle=None,
        status=status,
        created_at="2026-12-01T10:00:00+00:00",
        updated_at="2026-12-01T10:00:00+00:00",
    )


def test_only_a_role_holder_other_than_the_requester_may_decide() -> None:
    record = make_record(guild_id=OPS, owner_id=OWNER)
    approver = actor(roles={APPROVER_ROLE_ID: "approvers"})
    assert refusal(POLICY, approver, record, GATED, AWAITING, "approve") is None
    by_id = target(approval={"role": APPROVER_ROLE_ID})
    status_by_id = AWAITING.model_copy(update={"approval_role": APPROVER_ROLE_ID})
    assert refusal(POLICY, approver, record, by_id, status_by_id, "approve") is None

    requester = actor(user_id=OWNER, roles={APPROVER_ROLE_ID: "approvers"})
    assert "someone else must approve" in str(
        refusal(POLICY, requester, record, GATED, AWAITING, "approve")
    )
    admin = actor(manage_guild=True)
    assert "Only members with the role **approvers**" in str(
        refusal(POLICY, admin, record, GATED, AWAITING, "reject")
    )
    elsewhere = actor(guild_id="222222222222222222", roles={APPROVER_ROLE_ID: "approvers"})
    assert "another server" in str(refusal(POLICY, elsewhere, record, GATED, AWAITING, "approve"))


def test_a_decision_outside_the_gate_is_refused_with_what_happened() -> None:
    record = make_record(guild_id=OPS, owner_id=OWNER)
    approver = actor(roles={APPROVER_ROLE_ID: "approvers"})
    decided = AWAITING.model_copy(
        update={
            "state": DeploymentState.RUNNING,
            "approval": ApprovalRecord(decision="approved", by="555555555555555555"),
        }
    )
    assert "already approved by <@555555555555555555>" in str(
        refusal(POLICY, approver, record, GATED, decided, "reject")
    )
    running = make_status(approval_role="approvers")
    assert "not awaiting approval (it is running)" in str(
        refusal(POLICY, approver, record, GATED, running, "approve")
    )
    assert "does not require approval" in str(
        refusal(POLICY, approver, record, target(), make_status(), "approve")
    )


def test_rollback_picks_the_last_good_release_by_default() -> None:
    releases = [
        release(1, "superseded", "1.0.0"),
        release(2, "superseded", "1.1.0"),
        release(3, "rolled_back", "1.2.0"),
        release(4, "active", "1.3.0"),
    ]
    assert choose_rollback("echo", releases, None).number == 2
    assert choose_rollback("echo", releases, 3).version == "1.2.0"
    with pytest.raises(UserError, match="is the one live now"):
        choose_rollback("echo", releases, 4)
    with pytest.raises(UserError, match=r"has no release #9 \(its releases: #1 to #4\)"):
        choose_rollback("echo", releases, 9)
    for number in (0, -1, 2**31, 2**63, 10**30):
        with pytest.raises(UserError, match="releases are numbered from 1 to 2147483647"):
            choose_rollback("echo", releases, number)
    with pytest.raises(UserError, match="no previous release"):
        choose_rollback("echo", [release(1, "active")], None)
    with pytest.raises(UserError, match="still being deployed"):
        choose_rollback("echo", [release(1, "superseded"), release(2, "running")], 2)


def test_a_log_fits_inline_or_is_attached() -> None:
    short = ReleaseLogTail("echo", 3, "deploy-echo-1", "ready\n```evil", truncated=False)
    text, attached = log_answer(short)
    assert attached is None and text.startswith("Log of **echo** release #3:\n```\n")
    assert text.count("```") == 2, "a log line cannot close the block"
    long = ReleaseLogTail("echo", 3, "w", "x" * (INLINE_LOG_CHARS + 1), truncated=True)
    text, attached = log_answer(long)
    assert attached == long.text and "older output left out" in text
    broken = ReleaseLogTail("echo", 3, "w", "", truncated=False, problem="the file is gone")
    assert log_answer(broken) == (
        "Log of **echo** release #3:\nThe log could not be read: the file is gone",
        None,
    )


def test_the_card_shows_the_gate_and_who_decided() -> None:
    record = make_record()
    card = running_card(record, AWAITING, workflow_url=None)
    assert card.buttons_for is DeploymentState.AWAITING_APPROVAL
    assert "role **approvers** (not the person who asked)" in card.embed["description"]
    result = DeploymentResult(
        success=False,
        state=DeploymentState.CANCELLED,
        error="Rejected by 555555555555555555",
        approval=ApprovalRecord(decision="rejected", by="555555555555555555"),
        restored_release=2,
    )
    final = final_card(record, result, finished_at=STARTED, workflow_url=None)
    values = {field["name"]: field["value"] for field in final.embed["fields"]}
    assert values["Approval"] == "rejected by <@555555555555555555>"
    assert values["Rollback to"] == "release #2"
    assert not final.show_log
    failed = DeploymentResult(success=False, state=DeploymentState.FAILED, release_number=4)
    assert final_card(record, failed, finished_at=STARTED, workflow_url=None).show_log
