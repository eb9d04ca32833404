"""Every stored history replays on today's workflow code, without non-determinism or a
failed workflow task.

The histories were recorded from released commits by `tests.replay.record_histories`
(see docs/upgrading.md), one directory per commit; `c107ed9-upgraded/` holds deployments
that c107ed9 started and paused and this code finished after an upgrade (the
`before-recorded-targets/` patches, recorded with markers). A workflow change that would
break a deployment started before the upgrade fails here, in seconds, without a server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from shipcord.payload_codec import data_converter
from workflows.deployment_workflow import BotDeploymentWorkflow
from workflows.redacting_interceptor import RedactActivityFailures
from workflows.supervisor_workflow import ReleaseSupervisorWorkflow
from workflows.worker import WORKFLOW_RUNNER

HISTORIES = Path(__file__).parent / "histories"
HISTORY_FILES = sorted(HISTORIES.glob("*/*.json"))


def test_histories_of_each_release_are_stored() -> None:
    releases = {path.parent.name for path in HISTORY_FILES}
    assert {"c107ed9", "1d2ad73"} <= releases


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replayer() -> Replayer:
    # As the real worker runs the workflows (workflows.worker.create_worker): the same
    # workflows, sandbox and data converter (payloads written without encryption; an
    # encrypted history needs its key and is not stored here).
    return Replayer(
        workflows=[BotDeploymentWorkflow, ReleaseSupervisorWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        data_converter=data_converter(None),
        interceptors=[RedactActivityFailures()],
    )


@pytest.mark.parametrize(
    "path", HISTORY_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORY_FILES]
)
async def test_history_replays(replayer: Replayer, path: Path) -> None:
    history = load(path)
    # Raises on non-determinism and on any failed workflow task (such as an activity
    # result from an older release that no longer decodes).
    await replayer.replay_workflow(history)
