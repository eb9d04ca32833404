"""The hosts section of /status: shown only when there is something to say."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.deployments.hosts_status import render_hosts, worth_showing
from workflows.host_directory import HostInfo

BEAT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UP = HostInfo(name="alpha", last_heartbeat=BEAT, alive=True, workers=2)
GONE = HostInfo(name="beta", last_heartbeat=BEAT, alive=False, workers=1)
NEVER = HostInfo(name="gamma", last_heartbeat=None, alive=False, workers=0)


def test_one_live_host_is_not_worth_a_section() -> None:
    assert not worth_showing([UP])
    assert worth_showing([NEVER])
    assert worth_showing([UP, GONE])


def test_each_host_with_its_state_and_last_heartbeat() -> None:
    stamp = int(BEAT.timestamp())
    assert render_hosts([UP, GONE, NEVER]).splitlines() == [
        "Hosts:",
        f"🟢 **alpha**: up, last heartbeat <t:{stamp}:R>",
        f"🔴 **beta**: no running worker, last heartbeat <t:{stamp}:R>",
        "🔴 **gamma**: no running worker, no worker seen",
    ]
