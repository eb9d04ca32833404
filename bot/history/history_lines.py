"""A bot's deployments, newest first, a page at a time: what `/history` shows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from bot.board.closed_rows import closed_result
from bot.render import format_duration, mention, parse_timestamp, shorten
from storage import DeploymentRecord
from workflows.hosts import DEFAULT_HOST
from workflows.models import DeploymentState

PAGE_SIZE = 10
OUTCOME_ICONS = {
    DeploymentState.SUCCEEDED: "✅",
    DeploymentState.FAILED: "❌",
    DeploymentState.CANCELLED: "🛑",
}


def history_line(
    record: DeploymentRecord,
    workflow_url: str | None,
    now: datetime,
    release_numbers: Mapping[str, int] | None = None,
) -> str:
    started = parse_timestamp(record.created_at)
    when = f"<t:{int(started.timestamp())}:R>" if started else "?"
    if record.is_open:
        outcome = "⏳ in progress"
        release = ""
        took = format_duration((now - started).total_seconds()) if started else ""
    else:
        result = closed_result(record)
        state = result.final_state
        outcome = f"{OUTCOME_ICONS.get(state, '')} {state.value}"
        if result.approval is not None and result.approval.by:
            outcome += f" ({result.approval.decision} by {mention(result.approval.by)})"
        if state is DeploymentState.FAILED and result.error:
            outcome += f": {shorten(result.error.splitlines()[0], 120)}"
        # Rows closed before results were recorded (c107ed9) have their number only in
        # the releases table.
        number = result.release_number or (release_numbers or {}).get(record.workflow_id)
        release = f"#{number} " if number else ""
        if result.restored_release:
            release += f"(rollback to #{result.restored_release}) "
        if result.host and result.host != DEFAULT_HOST:
            release += f"on {result.host} "
        finished = parse_timestamp(record.finished_at)
        took = format_duration((finished - started).total_seconds()) if started and finished else ""
    link = f" · [workflow](<{workflow_url}>)" if workflow_url else ""
    return (
        f"{release}`{record.version}` · {mention(record.owner_id)} · {when}"
        + (f" · {took}" if took else "")
        + f" · {outcome}{link}"
    )


def render_history(
    bot_name: str,
    records: Sequence[DeploymentRecord],
    *,
    page: int,
    total: int,
    workflow_url: Callable[[str], str | None],
    now: datetime | None = None,
    release_numbers: Mapping[str, int] | None = None,
) -> str:
    if not records:
        return f"No deployments of **{bot_name}** that you may see."
    now = now or datetime.now(UTC)
    pages = max(1, -(-total // PAGE_SIZE))
    lines = [f"Deployments of **{bot_name}**, newest first (page {page + 1} of {pages}):"]
    lines += [
        history_line(record, workflow_url(record.workflow_id), now, release_numbers)
        for record in records
    ]
    text = "\n".join(lines)
    while len(text) > 2000 and len(lines) > 2:
        lines.pop()
        text = "\n".join([*lines, "…"])
    return text
