"""Message text for deployments: pure functions of what storage and Temporal report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import discord

from storage import DeploymentRecord
from workflows.deployment_client import ENDED_WORDS
from workflows.models import (
    CompensationRecord,
    DeploymentResult,
    DeploymentState,
    DeploymentStatus,
    is_snowflake,
)
from workflows.redaction import redact

BAR_WIDTH = 10
# Discord rejects message content above 2000 characters; errors are cut well below that.
MAX_ERROR_CHARS = 600
MAX_CONTENT_CHARS = 2000

STATE_ICONS = {
    DeploymentState.RUNNING: "🔄",
    DeploymentState.PAUSED: "⏸️",
    DeploymentState.AWAITING_APPROVAL: "✋",
    DeploymentState.ROLLING_BACK: "↩️",
    DeploymentState.SUCCEEDED: "✅",
    DeploymentState.FAILED: "❌",
    DeploymentState.CANCELLED: "🛑",
}
STATE_WORDS = {
    DeploymentState.RUNNING: "running",
    DeploymentState.PAUSED: "paused",
    DeploymentState.AWAITING_APPROVAL: "awaiting approval",
    DeploymentState.ROLLING_BACK: "rolling back",
    DeploymentState.SUCCEEDED: "succeeded",
    DeploymentState.FAILED: "failed",
    DeploymentState.CANCELLED: "cancelled",
}


def progress_bar(percent: int, width: int = BAR_WIDTH) -> str:
    """`██████░░░░ 60%`: the bar is clamped to 0..100."""
    clamped = max(0, min(100, percent))
    filled = round(clamped * width / 100)
    return f"{'█' * filled}{'░' * (width - filled)} {clamped}%"


def parse_timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def discord_relative_time(moment: datetime) -> str:
    """A timestamp each Discord client renders as "3 minutes ago" and keeps current."""
    return f"<t:{int(moment.timestamp())}:R>"


def format_duration(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def shorten(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """One line of at most `limit` characters, redacted: errors reach Discord through here."""
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(user_id: str) -> str:
    """A Discord user as a mention; an owner label from another client as plain text."""
    if is_snowflake(user_id):
        return f"<@{user_id}>"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(user_id[:64]))


def _header(record: DeploymentRecord, state: DeploymentState) -> str:
    return f"{STATE_ICONS[state]} **{record.bot_name}** `{record.version}` · `{record.workflow_id}`"


def _footer(workflow_url: str | None) -> list[str]:
    return [f"[Open in Temporal Web UI](<{workflow_url}>)"] if workflow_url else []


def render_running(
    record: DeploymentRecord,
    status: DeploymentStatus | None,
    *,
    workflow_url: str | None = None,
) -> str:
    """The progress message of an open deployment (status None: not reported yet)."""
    state = status.state if status else DeploymentState.RUNNING
    step = status.step if status else "Starting"
    percent = status.progress if status else 0
    started = (status.started_at if status else None) or parse_timestamp(record.created_at)
    lines = [
        _header(record, state),
        f"**{step}** — {percent}%",
        f"`{progress_bar(percent)}`",
        f"State: {STATE_WORDS[state]} · Owner: {mention(record.owner_id)}"
        + (f" · Started {discord_relative_time(started)}" if started else ""),
    ]
    if status and status.attempt and status.attempt > 1:
        lines.append(f"Attempt {status.attempt} of this step")
    if status and status.last_error:
        lines.append(f"Last error: {shorten(status.last_error)}")
    lines += _footer(workflow_url)
    return "\n".join(lines)[:MAX_CONTENT_CHARS]


def render_final(
    record: DeploymentRecord,
    result: DeploymentResult,
    *,
    finished_at: datetime,
    last_status: DeploymentStatus | None = None,
    workflow_url: str | None = None,
) -> str:
    """The progress message once the workflow has closed; it is never edited again.

    It shows the step where the deployment ended and its percentage, from the result
    (exact whether or not the board saw the intermediate steps).
    """
    state = result.final_state
    started = (last_status.started_at if last_status else None) or parse_timestamp(
        record.created_at
    )
    took = f" in {format_duration((finished_at - started).total_seconds())}" if started else ""
    percent = _ended_at_percent(result, last_status)
    ended = ended_words(result)
    release_number = result.release_number or (
        last_status.release_number if last_status and ended else None
    )
    if state is DeploymentState.SUCCEEDED:
        headline, percent = "**Deployed**", 100
    elif ended is not None:
        headline = f"**{ended}** at {_ended_at_step(result, last_status)}"
    elif state is DeploymentState.CANCELLED:
        headline = f"**Cancelled** at {_ended_at_step(result, last_status)}"
    else:
        headline = f"**Failed** at {_ended_at_step(result, last_status)}"
    lines = [
        _header(record, state),
        f"{headline} — {percent}%",
        f"`{progress_bar(percent)}`",
        f"State: {STATE_WORDS[state]}{took} · Owner: {mention(record.owner_id)}",
    ]
    if state is DeploymentState.FAILED and result.error:
        lines.append(f"Error: {shorten(result.error)}")
    if state is not DeploymentState.SUCCEEDED:
        lines.append(
            describe_rollback(
                result.compensations, release_number=release_number, ended_by=result.ended_by
            )
        )
    if result.release_number is not None and state is DeploymentState.SUCCEEDED:
        lines.append(f"Release #{result.release_number} is live.")
    lines += _footer(workflow_url)
    return "\n".join(lines)[:MAX_CONTENT_CHARS]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _ended_at_step(result: DeploymentResult, last_status: DeploymentStatus | None) -> str:
    step = result.step or (last_status.step if last_status else None) or "Starting"
    return step[:1].lower() + step[1:]


def _ended_at_percent(result: DeploymentResult, last_status: DeploymentStatus | None) -> int:
    if result.progress is not None:
        return result.progress
    return last_status.progress if last_status else 0


NOTHING_TO_ROLL_BACK = "Nothing had been deployed yet, so there was nothing to roll back."


def ended_words(result: DeploymentResult) -> str | None:
    """ "Terminated in Temporal" and the like, for a workflow that returned no result."""
    return ENDED_WORDS.get(result.ended_by) if result.ended_by else None


def no_rollback(release_number: int | None, ended_by: str | None) -> str:
    """Why there are no compensations to show: nothing was deployed, or no rollback ran
    (the workflow was ended in Temporal), never the first when a release is known."""
    made = f" Release #{release_number} had been created." if release_number is not None else ""
    if ended_by is not None:
        how = ENDED_WORDS.get(ended_by, "Ended in Temporal")
        return f"No rollback ran ({_lower_first(how)}).{made}"
    if release_number is not None:
        return f"No rollback ran.{made}"
    return NOTHING_TO_ROLL_BACK


def describe_rollback(
    compensations: Sequence[CompensationRecord],
    *,
    release_number: int | None = None,
    ended_by: str | None = None,
) -> str:
    """How the rollback went, from the workflow's own list of compensations: what was
    restored, that there was nothing to restore, or that the bot is down."""
    if not compensations:
        return no_rollback(release_number, ended_by)
    sentences = []
    for item in compensations:
        if item.ok:
            if item.detail:
                sentences.append(item.detail)
        elif item.name == "restore_previous_release":
            sentences.append(
                f"Restoring the previous release failed: the bot is DOWN — "
                f"{shorten(item.detail or 'unknown error', 200)}"
            )
        else:
            sentences.append(
                f"Could not {compensation_words(item.name)}: "
                f"{shorten(item.detail or 'unknown error', 200)}"
            )
    return " ".join(sentences) or "Completed steps were rolled back."


# What each compensation does, in words: people never read the workflow's own names.
COMPENSATION_WORDS = {
    "stop_new_release": "stop the new release",
    "restore_previous_release": "restore the previous release",
    "restore_command_snapshot": "restore the slash commands",
    "mark_release_rolled_back": "mark the release rolled back",
}


def compensation_words(name: str) -> str:
    """A compensation as a person reads it ("restore the slash commands")."""
    return COMPENSATION_WORDS.get(name, "undo an earlier step")


def compensation_label(name: str) -> str:
    """A compensation as a card lists it ("Restore the slash commands")."""
    words = compensation_words(name)
    return words[:1].upper() + words[1:]


def render_failure_notice(
    record: DeploymentRecord, error: str | None, rollback: str, *, workflow_url: str | None
) -> str:
    """The reply to the progress message (it mentions the owner)."""
    named = _deployment_named(record)
    headline = f"{mention(record.owner_id)} {named} failed: {_error_words(error)}"
    return _failure_text([headline], rollback, workflow_url)


def render_failure_dm(
    record: DeploymentRecord,
    error: str | None,
    rollback: str,
    *,
    guild_name: str | None,
    workflow_url: str | None,
) -> str:
    where = f" in {guild_name}" if guild_name else ""
    headline = f"Your {_deployment_named(record)}{where} failed."
    return _failure_text([headline, f"Error: {_error_words(error)}"], rollback, workflow_url)


def _deployment_named(record: DeploymentRecord) -> str:
    return f"deployment `{record.workflow_id}` of **{record.bot_name}** `{record.version}`"


def _error_words(error: str | None) -> str:
    return shorten(error or "unknown error")


def _failure_text(headlines: list[str], rollback: str, workflow_url: str | None) -> str:
    lines = [*headlines, rollback, *_footer(workflow_url)]
    return "\n".join(lines)[:MAX_CONTENT_CHARS]


def render_status_detail(
    record: DeploymentRecord,
    status: DeploymentStatus | None,
    result: DeploymentResult | None,
    *,
    now: datetime,
    workflow_url: str | None,
) -> str:
    """The answer to `/status deployment:<id>`."""
    if result is not None:
        finished = parse_timestamp(record.finished_at) or now
        return render_final(
            record, result, finished_at=finished, last_status=status, workflow_url=workflow_url
        )
    text = render_running(record, status, workflow_url=None)
    started = (status.started_at if status else None) or parse_timestamp(record.created_at)
    extra = []
    if started:
        extra.append(f"Elapsed: {format_duration((now - started).total_seconds())}")
    if status and status.completed_steps:
        extra.append(f"Completed: {', '.join(status.completed_steps)}")
    extra += _footer(workflow_url)
    return "\n".join([text, *extra])[:MAX_CONTENT_CHARS]


def render_status_line(record: DeploymentRecord, status: DeploymentStatus | None) -> str:
    state = status.state if status else DeploymentState(record.state)
    step = status.step if status else "Starting"
    percent = status.progress if status else 0
    return (
        f"`{record.workflow_id}` **{record.bot_name}** `{record.version}` — {step}"
        f" `{progress_bar(percent)}` {STATE_WORDS[state]} · {mention(record.owner_id)}"
    )


def render_unreadable_line(record: DeploymentRecord) -> str:
    """A deployment whose status cannot be read (its answer does not decode, say): the
    row's own facts, and that."""
    return (
        f"`{record.workflow_id}` **{record.bot_name}** `{record.version}` — ⚠️ its status "
        f"cannot be read · {mention(record.owner_id)}"
    )


def render_scheduled_line(record: DeploymentRecord, starts: datetime) -> str:
    """A deployment started with a delay, which has not run yet."""
    stamp = int(starts.timestamp())
    return (
        f"`{record.workflow_id}` **{record.bot_name}** `{record.version}` — scheduled for "
        f"<t:{stamp}:F> (<t:{stamp}:R>) · {mention(record.owner_id)}"
    )


def render_status_list(lines: Sequence[str], *, total: int) -> str:
    if not lines:
        return "No deployments are running in this server."
    header = f"{total} open deployment{'s' if total != 1 else ''} in this server:"
    more = [f"…and {total - len(lines)} more."] if total > len(lines) else []
    text = "\n".join([header, *lines, *more])
    return text[:MAX_CONTENT_CHARS]
