"""When a scheduled deployment starts, from what a person types in `/deploy … at:`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MAX_AHEAD = timedelta(days=30)
TOO_FAR = "A deployment can be scheduled at most 30 days ahead."
_DELAY = re.compile(r"(?:in\s+)?((?:\d+\s*[dhms]\s*)+)", re.IGNORECASE)
_PART = re.compile(r"(\d+)\s*([dhms])", re.IGNORECASE)
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


class BadTime(ValueError):
    """The text is not a time shipcord understands; the message says what is."""


def parse_when(text: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    text = text.strip()[:64]
    moment = _delay(text, now) or _clock(text, now) or _iso(text)
    if moment is None:
        raise BadTime(
            f"{text!r} is not a time I understand: use a delay such as `in 30m` or `2h`, a "
            "UTC time of day such as `14:30`, or a date and time such as `2026-12-24T18:00`."
        )
    if moment <= now:
        raise BadTime(f"<t:{int(moment.timestamp())}:f> is in the past.")
    if moment - now > MAX_AHEAD:
        raise BadTime(TOO_FAR)
    return moment


def _delay(text: str, now: datetime) -> datetime | None:
    match = _DELAY.fullmatch(text)
    if not match:
        return None
    seconds = sum(int(n) * _UNITS[unit.lower()] for n, unit in _PART.findall(match.group(1)))
    # Refused before it becomes a timedelta or a date, which overflow far short of what
    # 64 typed digits can say.
    if seconds > MAX_AHEAD.total_seconds():
        raise BadTime(TOO_FAR)
    return now + timedelta(seconds=seconds)


def _clock(text: str, now: datetime) -> datetime | None:
    match = _CLOCK.fullmatch(text)
    if not match:
        return None
    moment = now.replace(
        hour=int(match.group(1)), minute=int(match.group(2)), second=0, microsecond=0
    )
    return moment if moment > now else moment + timedelta(days=1)


def _iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
