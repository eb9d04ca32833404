"""The hosts section of `/status`: each host, whether a worker runs there, its heartbeat."""

from __future__ import annotations

from collections.abc import Sequence

from workflows.host_directory import HostInfo


def worth_showing(hosts: Sequence[HostInfo]) -> bool:
    return len(hosts) > 1 or any(not host.alive for host in hosts)


def render_host(host: HostInfo) -> str:
    icon, state = ("🟢", "up") if host.alive else ("🔴", "no running worker")
    beat = (
        f"last heartbeat <t:{int(host.last_heartbeat.timestamp())}:R>"
        if host.last_heartbeat is not None
        else "no worker seen"
    )
    return f"{icon} **{host.name}**: {state}, {beat}"


def render_hosts(hosts: Sequence[HostInfo]) -> str:
    return "Hosts:\n" + "\n".join(render_host(host) for host in hosts)
