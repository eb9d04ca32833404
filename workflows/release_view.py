"""A release as the engine uses it: its row, with the recorded target and runtime handle
read once, here, instead of wherever they are needed."""

from __future__ import annotations

from dataclasses import dataclass

from storage import ReleaseRecord
from workflows.runtimes import ReleaseHandle
from workflows.targets import Target


@dataclass(frozen=True, slots=True)
class Release:
    record: ReleaseRecord
    # None only for releases recorded before shipcord kept the target with them.
    target: Target | None
    # None until the release was started (or when its start was never recorded).
    handle: ReleaseHandle | None
    # The installation (its database) the release belongs to: part of its marker.
    installation: str

    @classmethod
    def of(cls, record: ReleaseRecord, installation: str) -> Release:
        return cls(
            record=record,
            installation=installation,
            target=Target.model_validate_json(record.target) if record.target else None,
            handle=(
                ReleaseHandle.model_validate_json(record.runtime_handle)
                if record.runtime_handle
                else None
            ),
        )

    @property
    def name(self) -> str:
        return f"release {self.record.number} of {self.record.bot_name}"

    @property
    def marker(self) -> str:
        """What the runtime labels the release with, so that it can be found without a
        handle, and told apart from another installation's on the same machine."""
        return self.marker_of(self.record, self.installation)

    @classmethod
    def marker_of(cls, record: ReleaseRecord, installation: str) -> str:
        """The marker from the row alone: known even when its target or handle cannot be
        read."""
        return f"{record.bot_name}#{record.number}@{record.workflow_id}" + cls.marker_suffix(
            installation
        )

    @staticmethod
    def marker_suffix(installation: str) -> str:
        return f"~{installation}"

    def handle_or_marker(self) -> ReleaseHandle:
        """The saved handle, or one that finds a copy an interrupted start launched."""
        if self.handle is not None:
            return self.handle
        return ReleaseHandle(runtime=self.record.runtime, marker=self.marker, port=0, log_path="")
