"""What the Discord front end is told by the application that runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from workflows.models import DEFAULT_API_BASE


@dataclass(frozen=True, slots=True)
class FrontEndConfig:
    targets_file: Path
    api_base: str = DEFAULT_API_BASE
    admin_role: str | None = None
    dev_guild_id: int | None = None
    # The servers shipcord serves (the development server included), and whether to leave
    # a server that adds the bot without being one of them.
    guild_ids: frozenset[str] = frozenset()
    leave_unconfigured_guilds: bool = False
    progress_interval: float = 2.0
    # Base URL of the Temporal Web UI for links, and the namespace the workflows are in.
    web_ui_base: str | None = None
    namespace: str = "default"

    def workflow_url(self, workflow_id: str) -> str | None:
        """Link to a workflow in the Temporal Web UI, or None when no UI is known."""
        if self.web_ui_base is None:
            return None
        namespace = quote(self.namespace, safe="")
        return f"{self.web_ui_base}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"
