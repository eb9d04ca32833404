"""What the front end counts, as an interface: the application decides where it goes."""

from __future__ import annotations

from typing import Protocol


class FrontEndMeter(Protocol):
    def deployment_started(self) -> None: ...

    def deployment_ended(self, outcome: str, seconds: float | None) -> None: ...

    def progress_edited(self) -> None: ...

    def open_deployments(self, count: int) -> None: ...


class NoMeter:
    """Counts nothing (tests, and `sync-commands`)."""

    def deployment_started(self) -> None:
        pass

    def deployment_ended(self, outcome: str, seconds: float | None) -> None:
        pass

    def progress_edited(self) -> None:
        pass

    def open_deployments(self, count: int) -> None:
        pass
