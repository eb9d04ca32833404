"""Rendering is pure: the same inputs give the same text, and the text carries what matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.board.cards import COLOURS, Card, colour, final_card, running_card
from bot.render import (
    describe_rollback,
    format_duration,
    progress_bar,
    render_failure_dm,
    render_failure_notice,
    render_final,
    render_running,
    render_status_detail,
    render_status_list,
)
from storage.records import DeploymentRecord
from workflows.models import (
    CompensationRecord,
    DeploymentResult,
    DeploymentState,
    DeploymentStatus,
)

STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_record(**changes: object) -> DeploymentRecord:
    values: dict[str, object] = {
        "workflow_id": "deploy-echo-1735787045000",
        "bot_name": "echo",
        "version": "1.4.0",
        "owner_id": "123456789012345678",
        "guild_id": "1",
        "channel_id": "2",
        "message_id": "3",
        "state": "running",
        "is_open": True,
        "notified": False,
        "error": None,
        "created_at": STARTED.isoformat(),
        "updated_at": STARTED.isoformat(),
        "finished_at": None,
    }
    values.update(changes)
    return DeploymentRecord(**values)  # type: ignore[arg-type]


def make_status(**changes: object) -> DeploymentStatus:
    values: dict[str, object] = {
        "step": "Deploying to platform",
        "progress": 60,
        "state": DeploymentState.RUNNING,
        "started_at": STARTED,
    }
    values.update(changes)
    return DeploymentStatus(**values)


def test_progress_bar_fills_proportionally_and_clamps() -> None:
    assert progress_bar(0) == "░░░░░░░░░░ 0%"
    assert progress_bar(60) == "██████░░░░ 60%"
    assert progress_bar(100) == "██████████ 100%"
    assert progress_bar(250) == "██████████ 100%"
    assert progress_bar(-5) == "░░░░░░░░░░ 0%"


def test_format_duration() -> None:
    assert format_duration(4.7) == "4s"
    assert format_duration(83) == "1m 23s"
    assert format_duration(3723) == "1h 02m 03s"


def test_running_message_shows_step_bar_state_owner_and_live_elapsed() -> None:
    text = render_running(make_record(), make_status(), workflow_url="http://ui/wf")
    assert "**Deploying to platform** — 60%" in text
    assert "██████░░░░ 60%" in text
    assert "State: running" in text
    assert "<@123456789012345678>" in text
    assert "`1.4.0`" in text
    # Elapsed time is a Discord timestamp: the text does not change while time passes.
    assert f"<t:{int(STARTED.timestamp())}:R>" in text
    assert "http://ui/wf" in text


def test_running_message_is_stable_between_steps() -> None:
    first = render_running(make_record(), make_status(updated_at=STARTED), workflow_url=None)
    later = make_status(updated_at=STARTED + timedelta(seconds=30))
    assert render_running(make_record(), later, workflow_url=None) == first


def test_running_message_before_the_first_status() -> None:
    text = render_running(make_record(), None)
    assert "**Starting** — 0%" in text
    assert "State: running" in text


def test_paused_and_errors_are_shown() -> None:
    status = make_status(state=DeploymentState.PAUSED, last_error="boom", attempt=3)
    text = render_running(make_record(), status)
    assert "State: paused" in text
    assert "Last error: boom" in text
    assert "Attempt 3" in text


def test_final_forms() -> None:
    finished = STARTED + timedelta(seconds=83)
    succeeded = render_final(
        make_record(),
        DeploymentResult(success=True, release_number=7),
        finished_at=finished,
    )
    assert "**Deployed** — 100%" in succeeded
    assert "██████████ 100%" in succeeded
    assert "succeeded in 1m 23s" in succeeded
    assert "Release #7" in succeeded

    failed = render_final(
        make_record(),
        DeploymentResult(success=False, error="token rejected", state=DeploymentState.FAILED),
        finished_at=finished,
        last_status=make_status(progress=10),
    )
    assert "**Failed**" in failed
    assert "Error: token rejected" in failed
    assert "10%" in failed

    cancelled = render_final(
        make_record(),
        DeploymentResult(success=False, error="cancelled", state=DeploymentState.CANCELLED),
        finished_at=finished,
    )
    assert "**Cancelled**" in cancelled
    assert "Error" not in cancelled


def test_long_errors_are_cut() -> None:
    text = render_running(make_record(), make_status(last_error="x" * 5000))
    assert len(text) < 2000
    assert text.count("x") < 700


def test_rollback_description_is_the_workflows_own_account() -> None:
    restored = [
        CompensationRecord(name="stop_new_release", ok=True, detail="Release #2 stopped."),
        CompensationRecord(
            name="restore_previous_release", ok=True, detail="Previous release #1 restored."
        ),
        CompensationRecord(name="mark_release_rolled_back", ok=True, detail=None),
    ]
    assert describe_rollback(restored) == "Release #2 stopped. Previous release #1 restored."
    first = [
        CompensationRecord(
            name="restore_previous_release", ok=True, detail="There was no previous release."
        )
    ]
    assert describe_rollback(first) == "There was no previous release."
    down = [
        CompensationRecord(name="restore_previous_release", ok=False, detail="exec failed"),
        CompensationRecord(name="restore_command_snapshot", ok=False, detail="403"),
    ]
    text = describe_rollback(down)
    assert "the bot is DOWN — exec failed" in text
    assert "Could not restore the slash commands: 403" in text
    # People read no activity names: the failure DM, the channel notice and /status say
    # what the step did.
    marking = [CompensationRecord(name="mark_release_rolled_back", ok=False, detail="locked")]
    assert describe_rollback(marking) == "Could not mark the release rolled back: locked"
    unknown = [CompensationRecord(name="some_future_step", ok=False, detail="x")]
    assert "some_future_step" not in describe_rollback(unknown)
    assert "nothing to roll back" in describe_rollback([])


def test_a_final_form_shows_where_it_ended_from_the_result_alone() -> None:
    failed = render_final(
        make_record(),
        DeploymentResult(
            success=False,
            error="boom",
            state=DeploymentState.FAILED,
            step="Running health check",
            progress=85,
        ),
        finished_at=STARTED + timedelta(seconds=3),
        last_status=None,
    )
    assert "**Failed** at running health check — 85%" in failed


def test_an_owner_from_another_client_is_text_not_a_mention() -> None:
    text = render_running(make_record(owner_id="user-123"), None)
    assert "Owner: user\\-123" in text or "Owner: user-123" in text
    assert "<@" not in text
    hostile = render_running(make_record(owner_id="@everyone"), None)
    assert "@everyone" not in hostile


def test_failure_notice_and_dm() -> None:
    notice = render_failure_notice(make_record(), "boom", "Rollback completed.", workflow_url=None)
    assert notice.startswith("<@123456789012345678>")
    assert "failed: boom" in notice
    dm = render_failure_dm(
        make_record(), "boom", "Rollback completed.", guild_name="Ops", workflow_url="http://u"
    )
    assert "in Ops failed" in dm
    assert "Error: boom" in dm
    assert "Rollback completed." in dm


def test_status_detail_and_list() -> None:
    now = STARTED + timedelta(seconds=65)
    detail = render_status_detail(
        make_record(),
        make_status(completed_steps=["Validating configuration"]),
        None,
        now=now,
        workflow_url="http://ui",
    )
    assert "Elapsed: 1m 05s" in detail
    assert "Completed: Validating configuration" in detail
    assert "http://ui" in detail
    assert render_status_list([], total=0) == "No deployments are running in this server."
    listed = render_status_list(["a", "b"], total=3)
    assert listed.startswith("3 open deployments")
    assert "1 more" in listed


# -- the progress message's card ------------------------------------------------------------


def card_text(card: Card) -> str:
    """What a person reads: the content, then the embed's text."""
    embed = card.embed
    parts = [card.content, embed["title"], embed["description"]]
    parts += [f"{field['name']}: {field['value']}" for field in embed["fields"]]
    return "\n".join([*parts, embed["footer"]["text"]])


def test_running_card_is_a_checklist_with_the_facts_and_a_one_line_summary() -> None:
    card = running_card(
        make_record(),
        make_status(release_number=3, completed_steps=["Validating configuration"]),
        workflow_url="http://ui/wf",
    )
    text = card_text(card)
    assert card.embed["color"] == COLOURS["running"]
    assert "**Deploying to platform** — 60%\n`██████░░░░ 60%`" in text
    assert (
        "✅ Validating configuration\n✅ Creating bot record\n🔄 **Deploying to platform**\n"
        "⬜ Running health check\n⬜ Deployed"
    ) in text
    assert "State: running" in text and "Owner: <@123456789012345678>" in text
    assert "Version: `1.4.0`" in text and "Release: #3" in text
    assert f"Started: <t:{int(STARTED.timestamp())}:R>" in text
    assert card.embed["url"] == "http://ui/wf" and "(http://ui/wf)" in text
    assert card.content == (
        "Deploying **echo** `1.4.0` as `deploy-echo-1735787045000` — Deploying to platform, 60%"
    )
    assert card.buttons_for is DeploymentState.RUNNING


def test_the_card_changes_only_when_something_shown_changed() -> None:
    first = running_card(make_record(), make_status(updated_at=STARTED), workflow_url=None)
    later = make_status(updated_at=STARTED + timedelta(seconds=30))
    assert running_card(make_record(), later, workflow_url=None) == first
    paused = make_status(state=DeploymentState.PAUSED)
    assert running_card(make_record(), paused, workflow_url=None) != first


def test_colour_by_state_including_approval() -> None:
    colours = {
        state: colour(state)
        for state in (*DeploymentState, "awaiting_approval")  # a state not modelled here yet
    }
    assert len(set(colours.values())) == len(colours), "each state its own colour"
    assert colour("awaiting_approval") == COLOURS["awaiting_approval"]
    assert colour("something-new") == COLOURS["running"]
    card = running_card(make_record(), make_status(state=DeploymentState.PAUSED), workflow_url=None)
    assert card.embed["color"] == COLOURS["paused"]
    assert "⏸️ **Deploying to platform**" in card_text(card)
    assert card.content.endswith("(paused)")


def test_rolling_back_shows_each_compensation_as_it_completes() -> None:
    status = make_status(
        state=DeploymentState.ROLLING_BACK,
        step="Rolling back",
        progress=85,
        compensations=[
            CompensationRecord(name="stop_new_release", ok=True, detail="Release #2 stopped.")
        ],
    )
    text = card_text(running_card(make_record(), status, workflow_url=None))
    assert "✅ Deploying to platform\n↩️ **Running health check**\n⬜ Deployed" in text
    assert "Rollback: ✅ Stop the new release: Release #2 stopped.\n🔄 rolling back…" in text
    assert "State: rolling back" in text


def test_final_card_is_exact_from_the_result_alone() -> None:
    result = DeploymentResult(
        success=False,
        error="exec failed",
        state=DeploymentState.FAILED,
        step="Running health check",
        progress=85,
        release_number=2,
        compensations=[
            CompensationRecord(name="stop_new_release", ok=True, detail="Release #2 stopped."),
            CompensationRecord(name="restore_previous_release", ok=False, detail="exec failed"),
        ],
    )
    card = final_card(
        make_record(), result, finished_at=STARTED + timedelta(seconds=12), workflow_url=None
    )
    text = card_text(card)
    assert "**Failed** at running health check — 85%" in text
    assert "❌ **Running health check**\n⬜ Deployed" in text
    assert "State: failed in 12s" in text and "Error: exec failed" in text
    assert "✅ Stop the new release: Release #2 stopped." in text
    assert "❌ Restore the previous release failed, the bot is DOWN: exec failed" in text
    assert card.embed["color"] == COLOURS["failed"] and card.buttons_for is None
    assert card.content == (
        "Failed to deploy **echo** `1.4.0` as `deploy-echo-1735787045000` — at running "
        "health check, 85%"
    )
    # What the board saw last does not change what the result says.
    seen = make_status(step="Validating configuration", progress=10)
    assert (
        final_card(
            make_record(),
            result,
            finished_at=STARTED + timedelta(seconds=12),
            last_status=seen,
            workflow_url=None,
        ).embed
        == card.embed
    )


def test_final_cards_of_success_and_cancellation() -> None:
    finished = STARTED + timedelta(seconds=83)
    succeeded = final_card(
        make_record(),
        DeploymentResult(success=True, release_number=7, step="Deployed", progress=100),
        finished_at=finished,
        workflow_url=None,
    )
    text = card_text(succeeded)
    assert "**Deployed** — 100%" in text and "Release #7 is live." in text
    assert "State: succeeded in 1m 23s" in text and "Rollback" not in text
    assert succeeded.embed["description"].count("✅") == 5  # every step done
    assert succeeded.content.endswith("release #7 is live")
    cancelled = final_card(
        make_record(),
        DeploymentResult(
            success=False,
            state=DeploymentState.CANCELLED,
            step="Deploying to platform",
            progress=60,
        ),
        finished_at=finished,
        workflow_url=None,
    )
    text = card_text(cancelled)
    assert "**Cancelled** at deploying to platform — 60%" in text
    assert "🛑 **Deploying to platform**" in text
    assert "Rollback: Nothing had been deployed yet" in text
    assert "Error" not in text and cancelled.embed["color"] == COLOURS["cancelled"]


def test_cards_fit_discords_limits_and_never_mention_a_label() -> None:
    card = running_card(make_record(owner_id="@everyone"), make_status(last_error="x" * 5000),
                        workflow_url=None)  # fmt: skip
    assert all(len(field["value"]) <= 1024 for field in card.embed["fields"])
    assert "@everyone" not in card_text(card) and "\n" not in card.content
    assert len(card.content) <= 2000 and len(card.embed["description"]) <= 4096


def test_a_workflow_terminated_in_temporal_says_so_where_the_board_last_saw_it() -> None:
    from temporalio.client import WorkflowExecutionStatus

    from workflows.deployment_client import closed_without_result, with_last_status

    last = make_status(step="Running health check", progress=85, release_number=4)
    # No worker answered the closed workflow's query: only the board knows where it was.
    result = closed_without_result(WorkflowExecutionStatus.TERMINATED, None, "operator")
    assert result.ended_by == "terminated" and result.step is None
    assert result.error == "Terminated in Temporal: operator."
    finished = STARTED + timedelta(seconds=30)
    record = make_record(is_open=False, state="failed")
    for shown_result in (result, with_last_status(result, last)):
        card = final_card(
            record, shown_result, finished_at=finished, last_status=last, workflow_url=None
        )
        text = card_text(card)
        assert "**Terminated in Temporal** at running health check — 85%" in text
        assert "terminated in Temporal after 30s" in text
        assert "Release: #4" in text
        assert "No rollback ran (terminated in Temporal). Release #4 had been created." in text
        assert "Nothing had been deployed" not in text
        final = render_final(record, shown_result, finished_at=finished, last_status=last)
        assert "**Terminated in Temporal** at running health check — 85%" in final
        assert "Release #4 had been created" in final
    # The workflow's own results never carry it: the contract is unchanged.
    assert "endedBy" not in DeploymentResult(success=True).model_dump_json()
    assert "endedBy" in result.model_dump_json()
    # Recorded with the row, it reads back the same.
    assert DeploymentResult.model_validate_json(result.model_dump_json()) == result
    # Nothing started yet, and no release: then nothing was deployed, still said plainly.
    early = closed_without_result(WorkflowExecutionStatus.TERMINATED, None, None)
    assert describe_rollback([], ended_by=early.ended_by) == (
        "No rollback ran (terminated in Temporal)."
    )
