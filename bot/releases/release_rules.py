"""A bot's releases as /rollback and /logs show and pick them: pure functions of the rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.interactions.user_answers import UserError
from bot.render import parse_timestamp
from storage import ReleaseRecord
from workflows.models import RELEASE_NUMBER_MAX
from workflows.release_logs import ReleaseLogTail

# Release statuses as the engine writes them.
ACTIVE = "active"
SUPERSEDED = "superseded"
STATUS_WORDS = {
    "pending": "in flight",
    "running": "in flight",
    ACTIVE: "live now",
    SUPERSEDED: "replaced",
    "rolled_back": "rolled back",
    "stopped": "stopped",
}
# What fits in one message with the header and a code block around the text.
INLINE_LOG_CHARS = 1800


def require_release_number(number: int) -> None:
    """Refuse a number no release can have: any client may send any integer."""
    if not 1 <= number <= RELEASE_NUMBER_MAX:
        raise UserError(
            f"There is no release with that number: releases are numbered from 1 to "
            f"{RELEASE_NUMBER_MAX}."
        )


def choose_rollback(
    bot_name: str, releases: Sequence[ReleaseRecord], number: int | None
) -> ReleaseRecord:
    """The release /rollback puts back, or a UserError saying why there is none."""
    if number is None:
        good = [release for release in releases if release.status == SUPERSEDED]
        if not good:
            raise UserError(
                f"**{bot_name}** has no previous release to roll back to: no release was "
                "live before the current one."
            )
        return max(good, key=lambda release: release.number)
    require_release_number(number)
    chosen = next((release for release in releases if release.number == number), None)
    if chosen is None:
        known = f"#1 to #{max(r.number for r in releases)}" if releases else "none yet"
        raise UserError(f"**{bot_name}** has no release #{number} (its releases: {known}).")
    if chosen.status == ACTIVE:
        raise UserError(
            f"Release #{number} of **{bot_name}** is the one live now: nothing to roll back."
        )
    if chosen.in_flight:
        raise UserError(
            f"Release #{number} of **{bot_name}** is still being deployed; wait for it to end."
        )
    return chosen


def release_label(release: ReleaseRecord) -> str:
    """One release in an autocomplete list (plain text: no Discord markup shows there)."""
    created = parse_timestamp(release.created_at)
    when = created.strftime("%Y-%m-%d %H:%M UTC") if isinstance(created, datetime) else "?"
    status = STATUS_WORDS.get(release.status, release.status)
    return f"#{release.number} · {release.version} · {when} · {status}"[:100]


def log_answer(tail: ReleaseLogTail) -> tuple[str, str | None]:
    """The answer to /logs: its text, and the log to attach when it does not fit inline."""
    header = f"Log of **{tail.bot_name}** release #{tail.release_number}"
    if tail.truncated:
        header += " (the end; older output left out)"
    lines = [header + ":"]
    if tail.problem:
        lines.append(f"The log could not be read: {tail.problem}")
    if not tail.text:
        if not tail.problem:
            lines.append("It printed nothing yet.")
        return "\n".join(lines), None
    if len(tail.text) > INLINE_LOG_CHARS:
        lines.append(f"Attached: the last {tail.text.count(chr(10)) + 1} lines.")
        return "\n".join(lines), tail.text
    # A log line cannot close the code block early.
    body = tail.text.replace("```", "`\u200b``")
    lines.append(f"```\n{body}\n```")
    return "\n".join(lines), None
