"""What `/deploy … at:` understands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.deployments.schedule_time import BadTime, parse_when

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 30m", NOW + timedelta(minutes=30)),
        ("30m", NOW + timedelta(minutes=30)),
        ("1h30m", NOW + timedelta(minutes=90)),
        ("in 30d", NOW + timedelta(days=30)),
        ("90s", NOW + timedelta(seconds=90)),
        ("14:30", NOW.replace(hour=14, minute=30)),
        ("09:15", NOW.replace(hour=9, minute=15) + timedelta(days=1)),
        ("2026-12-24T18:00", datetime(2026, 12, 24, 18, 0, tzinfo=UTC)),
        ("2026-12-24T18:00+01:00", datetime(2026, 12, 24, 17, 0, tzinfo=UTC)),
    ],
)
def test_understood(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("soon", "not a time I understand"),
        ("2025-01-01T00:00", "in the past"),
        ("in 40d", "at most 30 days"),
        ("in 30d1s", "at most 30 days"),
        # Past what a timedelta or a date can hold.
        ("in 99999999999999999999d", "at most 30 days"),
        ("999999999d", "at most 30 days"),
        ("in " + "9" * 60 + "s", "at most 30 days"),
        ("1d" * 31, "at most 30 days"),
        ("9999-12-31T23:59-14:00", "at most 30 days"),
        ("0001-01-01T00:00+14:00", "in the past"),
        ("x" * 5000, "not a time I understand"),
    ],
)
def test_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(BadTime) as refused:
        parse_when(text, NOW)
    assert problem in str(refused.value) and len(str(refused.value)) < 400
