"""Watching hosts from the front end: a host that goes or comes back is an incident."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog

from storage import Storage
from workflows.host_directory import HostDirectory, HostInfo
from workflows.rounds import Rounds
from workflows.targets import TargetRegistry, TargetsError

log = structlog.get_logger(__name__)

HOST_GONE = "host_gone"
HOST_BACK = "host_back"


def host_key_prefix(host: str) -> str:
    return f"host:{host}:"


def describe_change(host: HostInfo, bot_name: str) -> str:
    if not host.alive:
        since = (
            f"its last heartbeat was <t:{int(host.last_heartbeat.timestamp())}:R>"
            if host.last_heartbeat is not None
            else "no worker of it was ever seen"
        )
        return (
            f"Host **{host.name}** has no running worker ({since}): **{bot_name}** runs there, "
            "and it can be neither deployed nor supervised until the host comes back."
        )
    return f"Host **{host.name}** is back: **{bot_name}** is supervised and deployable again."


class HostWatch:
    def __init__(
        self,
        *,
        directory: HostDirectory,
        storage: Storage,
        targets: TargetRegistry,
        interval: float,
    ) -> None:
        self._directory = directory
        self._storage = storage
        self._targets = targets
        self._watching_since: float | None = None
        self._rounds = Rounds(
            "shipcord-host-watch",
            self.check_all,
            interval=interval,
            failure_event="host_watch_failed",
        )

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def check_all(self) -> int:
        """One round; returns how many incidents it recorded."""
        recorded = 0
        self._watched_long_enough()  # the watch starts with its first round
        for host in await self._directory.describe():
            recorded += await self._check(host)
            recorded += await self._copy_incidents(host.name)
        return recorded

    async def _copy_incidents(self, host: str) -> int:
        try:
            notes = await self._directory.supervision_incidents(host)
        except Exception as error:  # a query no worker answers now: the next round asks again
            log.info("host_incidents_not_read", host=host, error=type(error).__name__)
            return 0
        copied = 0
        for note in notes:
            copied += await note.record_once(self._storage)
        return copied

    def _watched_long_enough(self) -> bool:
        now = time.monotonic()
        if self._watching_since is None:
            self._watching_since = now
        return now - self._watching_since >= self._directory.heartbeat_timeout.total_seconds()

    async def _check(self, host: HostInfo) -> int:
        if not host.alive and not self._watched_long_enough():
            return 0
        latest = await self._storage.latest_incident_keyed(host_key_prefix(host.name))
        was_alive = latest is None or latest.kind == HOST_BACK
        if host.alive == was_alive:
            return 0
        kind = HOST_BACK if host.alive else HOST_GONE
        log.warning("host_" + ("back" if host.alive else "gone"), host=host.name)
        # One change, one key per bot: recording it again (a crash in between) is a no-op.
        moment = datetime.now(UTC).isoformat(timespec="seconds")
        recorded = 0
        for bot_name in await self._affected_bots(host.name):
            if await self._storage.record_incident(
                key=f"{host_key_prefix(host.name)}{kind}:{moment}:{bot_name}",
                bot_name=bot_name,
                kind=kind,
                message=describe_change(host, bot_name),
            ):
                recorded += 1
        return recorded

    async def _affected_bots(self, host: str) -> list[str]:
        try:
            targets = self._targets.current().bots.values()
        except TargetsError:
            return []
        bots = []
        for target in targets:
            if (target.host or self._directory.default_host) != host:
                continue
            if await self._storage.latest_deployment_of(target.name) is not None:
                bots.append(target.name)
        return bots
