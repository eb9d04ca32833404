"""The progress message as people read it: an embed, and a one-line summary as its text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import discord

from bot.access.approval_rules import role_label
from bot.render import (
    STATE_ICONS,
    compensation_label,
    ended_words,
    format_duration,
    mention,
    no_rollback,
    parse_timestamp,
    progress_bar,
    shorten,
)
from storage import DeploymentRecord
from workflows.models import (
    STEP_PROGRESS,
    ApprovalRecord,
    CompensationRecord,
    DeploymentResult,
    DeploymentState,
    DeploymentStatus,
    Step,
    environment_of,
)

# Discord's limits for an embed: a field's value, the description.
MAX_FIELD_CHARS = 1024
MAX_DESCRIPTION_CHARS = 4096

# Keyed by the state's wire value, so that a state this version does not know yet (a
# target that requires approval reports `awaiting_approval`) still renders.
COLOURS = {
    "running": 0x5865F2,
    "paused": 0xFEE75C,
    "awaiting_approval": 0x9B59B6,
    "rolling_back": 0xE67E22,
    "succeeded": 0x57F287,
    "failed": 0xED4245,
    "cancelled": 0x95A5A6,
}
WORDS = {
    "running": "running",
    "paused": "paused",
    "awaiting_approval": "awaiting approval",
    "rolling_back": "rolling back",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
ICONS = {state.value: icon for state, icon in STATE_ICONS.items()} | {"awaiting_approval": "✋"}
# How the step where a deployment is (or ended) is marked, by state.
CURRENT_MARKS = {
    "running": "🔄",
    "paused": "⏸️",
    "awaiting_approval": "✋",
    "rolling_back": "↩️",
    "succeeded": "✅",
    "failed": "❌",
    "cancelled": "🛑",
}
DONE, TO_DO = "✅", "⬜"
CHECKLIST = [step for step in Step if step in STEP_PROGRESS and step is not Step.STARTING]


@dataclass(frozen=True)
class Card:
    """What the progress message shows: text, embed (Discord's JSON) and which buttons."""

    content: str
    embed: dict[str, Any]
    buttons_for: DeploymentState | None  # the state the buttons fit; None: no buttons
    # A finished card's one button: the failed release's log (for those who may read it).
    show_log: bool = False

    def discord_embed(self) -> discord.Embed:
        return discord.Embed.from_dict(self.embed)


def state_value(state: DeploymentState | str) -> str:
    return state.value if isinstance(state, DeploymentState) else str(state)


def colour(state: DeploymentState | str) -> int:
    return COLOURS.get(state_value(state), COLOURS["running"])


def running_card(
    record: DeploymentRecord,
    status: DeploymentStatus | None,
    *,
    workflow_url: str | None,
    host_down: bool = False,
) -> Card:
    """The card of an open deployment (status None: Temporal has not reported yet);
    `host_down`: its host has no running worker now."""
    state = state_value(status.state) if status else "running"
    step = status.step if status else Step.STARTING.value
    percent = status.progress if status else 0
    started = (status.started_at if status else None) or parse_timestamp(record.created_at)
    lines = [f"**{step}** — {percent}%", f"`{progress_bar(percent)}`"]
    if status and status.attempt and status.attempt > 1:
        lines.append(f"Attempt {status.attempt} of this step")
    if status and host_down and status.host and state == "running":
        lines.append(
            f"⏳ Waiting for host **{status.host}**, which has no running worker now: the step "
            "fails if none takes it within the host's timeout."
        )
    if status and state == "awaiting_approval" and status.approval_role:
        until = status.approval_deadline
        lines.append(
            f"Waiting for a member with the role {role_label(status.approval_role)} "
            "(not the person who asked) to approve or reject"
            + (
                f", until <t:{int(until.timestamp())}:t> (<t:{int(until.timestamp())}:R>)"
                if until
                else ""
            )
            + "."
        )
    lines += ["", *checklist(state, step, percent)]
    fields = [
        _field("State", WORDS.get(state, state)),
        *_facts(record, status.release_number if status else None),
    ]
    if started:
        fields.append(_field("Started", f"<t:{int(started.timestamp())}:R>"))
    if status and status.restored_release:
        fields.append(_field("Rollback to", f"release #{status.restored_release}"))
    if status and status.approval:
        fields.append(_field("Approval", approval_text(status.approval)))
    fields.append(_field("Deployment", f"`{record.workflow_id}`", inline=False))
    if status and status.last_error:
        fields.append(_field("Last error", shorten(status.last_error), inline=False))
    if state == "rolling_back" or (status and status.compensations):
        compensations = status.compensations if status else []
        fields.append(_field("Rollback", rollback_lines(compensations, done=False), inline=False))
    return Card(
        content=_running_summary(record, state, step, percent),
        embed=_embed(record, state, lines, fields, started, workflow_url),
        buttons_for=status.state if status else DeploymentState.RUNNING,
    )


def final_card(
    record: DeploymentRecord,
    result: DeploymentResult,
    *,
    finished_at: datetime,
    last_status: DeploymentStatus | None = None,
    workflow_url: str | None,
) -> Card:
    """The card of a finished deployment, from its result; it is never edited again."""
    state = result.final_state.value
    started = (last_status.started_at if last_status else None) or parse_timestamp(
        record.created_at
    )
    took = f" in {format_duration((finished_at - started).total_seconds())}" if started else ""
    step, percent = ended_at(result, last_status)
    ended = ended_words(result)
    # A workflow ended in Temporal returned nothing: its last known status says how far
    # it went (the release it had created included).
    release_number = result.release_number or (
        last_status.release_number if last_status and ended else None
    )
    word = WORDS[state]
    if ended is not None:
        word = _lower_first(ended)
        took = took.replace(" in ", " after ", 1)
    if state == "succeeded":
        headline, step, percent = "**Deployed**", Step.DEPLOYED.value, 100
    elif ended is not None:
        headline = f"**{ended}** at {_lower_first(step)}"
    elif state == "cancelled":
        headline = f"**Cancelled** at {_lower_first(step)}"
    else:
        headline = f"**Failed** at {_lower_first(step)}"
    lines = [f"{headline} — {percent}%", f"`{progress_bar(percent)}`"]
    if state == "succeeded" and result.release_number is not None:
        lines.append(f"Release #{result.release_number} is live.")
    lines += ["", *checklist(state, step, percent)]
    fields = [_field("State", f"{word}{took}"), *_facts(record, release_number)]
    if result.restored_release:
        fields.append(_field("Rollback to", f"release #{result.restored_release}"))
    if result.approval:
        fields.append(_field("Approval", approval_text(result.approval)))
    fields.append(_field("Deployment", f"`{record.workflow_id}`", inline=False))
    if state == "failed" and result.error:
        fields.append(_field("Error", shorten(result.error), inline=False))
    if state != "succeeded":
        rollback = rollback_lines(
            result.compensations, done=True, release_number=release_number, ended=result.ended_by
        )
        fields.append(_field("Rollback", rollback, inline=False))
    return Card(
        content=_final_summary(record, state, step, percent, release_number, ended),
        embed=_embed(record, state, lines, fields, started, workflow_url),
        buttons_for=None,
        # Why a started release failed is in its output, which only this button shows.
        show_log=state == "failed" and release_number is not None,
    )


def approval_text(approval: ApprovalRecord) -> str:
    """How the approval gate ended: who decided and when, or that time ran out."""
    if approval.decision == "timed_out":
        return "not approved in time"
    who = f" by {mention(approval.by)}" if approval.by else ""
    when = f" <t:{int(approval.at.timestamp())}:R>" if approval.at else ""
    return f"{approval.decision}{who}{when}"


def ended_at(result: DeploymentResult, last_status: DeploymentStatus | None) -> tuple[str, int]:
    """The step where the deployment ended and its percentage: from the result, which
    says so exactly; only a result without them (a workflow that was terminated) falls
    back to the last status the board saw."""
    step = result.step or (last_status.step if last_status else None) or Step.STARTING.value
    if result.progress is not None:
        return step, result.progress
    return step, last_status.progress if last_status else 0


def checklist(state: str, step: str, percent: int) -> list[str]:
    """Every step of a deployment, marked done, current (how depends on the state) or
    to do. While rolling back (and once rolled back) the step reported is "Rolling back",
    with the percentage of the step where it stopped: that one is the current step."""
    position = _position(step, percent)
    lines = []
    for index, item in enumerate(CHECKLIST):
        if state == "succeeded" or index < position:
            lines.append(f"{DONE} {item.value}")
        elif index == position:
            lines.append(f"{CURRENT_MARKS.get(state, '🔄')} **{item.value}**")
        else:
            lines.append(f"{TO_DO} {item.value}")
    return lines


def _position(step: str, percent: int) -> int:
    for index, item in enumerate(CHECKLIST):
        if item.value == step:
            return index
    if step == Step.STARTING.value:
        return -1
    reached = [index for index, item in enumerate(CHECKLIST) if item.progress <= percent]
    return reached[-1] if reached else -1


def rollback_lines(
    compensations: Sequence[CompensationRecord],
    *,
    done: bool,
    release_number: int | None = None,
    ended: str | None = None,
) -> str:
    """Each compensation with its outcome, in the order they ran."""
    if not compensations and done:
        return no_rollback(release_number, ended)
    lines = []
    for item in compensations:
        label = compensation_label(item.name)
        detail = shorten(item.detail or "", 200)
        if item.ok:
            lines.append(f"{DONE} {label}" + (f": {detail}" if detail else ""))
        elif item.name == "restore_previous_release":
            lines.append(f"❌ {label} failed, the bot is DOWN: {detail or 'unknown error'}")
        else:
            lines.append(f"❌ {label} failed: {detail or 'unknown error'}")
    if not done:
        lines.append("🔄 rolling back…")
    return _fit("\n".join(lines), MAX_FIELD_CHARS)


def _facts(record: DeploymentRecord, release_number: int | None) -> list[dict[str, Any]]:
    facts = [_field("Owner", mention(record.owner_id)), _field("Version", f"`{record.version}`")]
    environment = environment_of(record.bot_name)
    if environment is not None:
        facts.append(_field("Environment", environment))
    if release_number is not None:
        facts.append(_field("Release", f"#{release_number}"))
    return facts


def _embed(
    record: DeploymentRecord,
    state: str,
    lines: list[str],
    fields: list[dict[str, Any]],
    started: datetime | None,
    workflow_url: str | None,
) -> dict[str, Any]:
    if workflow_url:
        lines = [*lines, "", f"[Open in Temporal Web UI]({workflow_url})"]
    embed: dict[str, Any] = {
        "title": f"{ICONS.get(state, '🔄')} {record.bot_name} {record.version}",
        "description": _fit("\n".join(lines), MAX_DESCRIPTION_CHARS),
        "color": colour(state),
        "fields": fields,
        "footer": {"text": f"shipcord · {record.workflow_id}"},
    }
    if workflow_url:
        embed["url"] = workflow_url
    if started:
        embed["timestamp"] = started.isoformat()
    return embed


def _field(name: str, value: str, *, inline: bool = True) -> dict[str, Any]:
    return {"name": name, "value": _fit(value or "—", MAX_FIELD_CHARS), "inline": inline}


def _running_summary(record: DeploymentRecord, state: str, step: str, percent: int) -> str:
    what = f"Deploying **{record.bot_name}** `{record.version}` as `{record.workflow_id}`"
    if state == "rolling_back":
        return f"{what} — rolling back, stopped at {percent}%"
    suffix = "" if state == "running" else f" ({WORDS.get(state, state)})"
    return f"{what} — {step}, {percent}%{suffix}"


def _final_summary(
    record: DeploymentRecord,
    state: str,
    step: str,
    percent: int,
    release_number: int | None,
    ended: str | None = None,
) -> str:
    what = f"**{record.bot_name}** `{record.version}` as `{record.workflow_id}`"
    if state == "succeeded":
        live = f" — release #{release_number} is live" if release_number is not None else ""
        return f"Deployed {what}{live}"
    if ended is not None:
        return f"{ended}: deploying {what} — at {_lower_first(step)}, {percent}%"
    verb = "Cancelled deploying" if state == "cancelled" else "Failed to deploy"
    return f"{verb} {what} — at {_lower_first(step)}, {percent}%"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
