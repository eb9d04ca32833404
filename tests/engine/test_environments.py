"""A bot's environments: each its own target, token, lock and releases; promotion only of
what is live and soaked in the source environment."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from tests.discord_double import DiscordDouble
from tests.engine.conftest import ECHO_TOKEN
from tests.engine.harness import ECHO_TOKEN_ENV, Engine, wait_until
from workflows.models import DeploymentState
from workflows.supervision_rounds import SupervisionSettings

StartEngine = Callable[..., AbstractAsyncContextManager[Engine]]

STAGING_TOKEN_ENV = "SHIPCORD_TEST_STAGING_TOKEN"
STAGING_TOKEN = "staging-bot-test-token"
ENVIRONMENTS = f"""
[bots.staged]
command = ["{{python}}", "-m", "examples.echo_bot", "--release", "{{version}}"]
token_env = "{ECHO_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
healthy_after = 0.3
health_timeout = 20

[bots.staged.environments.staging]
token_env = "{STAGING_TOKEN_ENV}"

[bots.staged.environments.production]
promote_from = "staging"
soak = "30m"
"""
FAST = SupervisionSettings(
    interval_seconds=0.3, restart_limit=5, restart_window_seconds=600, max_backoff_seconds=0.3
)


@pytest.fixture(scope="module")
async def double() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as started:
        started.add_bot(token=ECHO_TOKEN, username="echo")
        started.add_bot(token=STAGING_TOKEN, username="echo-staging")
        yield started


@pytest.fixture(autouse=True)
def staging_token() -> Iterator[None]:
    os.environ[STAGING_TOKEN_ENV] = STAGING_TOKEN
    yield
    os.environ.pop(STAGING_TOKEN_ENV, None)


def token_of(process: psutil.Process) -> str:
    return process.environ()["DISCORD_TOKEN"]


def soaked(engine: Engine, target_name: str, minutes: float) -> None:
    """Move the live release's start back, as if `minutes` had passed since it went live."""
    went_live = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
    with sqlite3.connect(engine.data_dir / "shipcord.db") as db:
        db.execute(
            "UPDATE releases SET live_since = ? WHERE bot_name = ? AND status = 'active'",
            (went_live, target_name),
        )


async def test_two_environments_deploy_at_once_each_with_its_token_and_releases(
    start_engine: StartEngine,
) -> None:
    async with start_engine(extra_targets=ENVIRONMENTS) as engine:
        engine.gate.hold("run_health_check")
        staging = await engine.deploy("staged", "1.0.0", environment="staging")
        await engine.status_when(staging, lambda s: s.step == "Running health check")
        # Production takes only what staging runs: this one is refused at validation.
        early = await engine.deploy("staged", "1.0.0", environment="production")
        refused = await engine.deployments.result(early)
        assert refused.state is DeploymentState.FAILED
        assert "Nothing is live in staging for **staged**" in (refused.error or "")
        engine.gate.release("run_health_check")
        result = await engine.deployments.result(staging)
        assert result.success and result.environment == "staging"

        soaked(engine, "staged.staging", minutes=31)
        production = await engine.deploy("staged", "1.0.0", environment="production")
        assert (await engine.deployments.result(production)).success
        status = await engine.deployments.status(production)
        assert status.environment == "production"

        tokens = sorted(token_of(process) for process in engine.processes())
        assert tokens == sorted([ECHO_TOKEN, STAGING_TOKEN])
        assert [r.number for r in await engine.storage.list_releases("staged.staging")] == [1]
        assert [r.number for r in await engine.storage.list_releases("staged.production")] == [1]


async def test_promotion_is_refused_before_the_soak_for_another_version_and_after_a_crash(
    start_engine: StartEngine,
) -> None:
    async with start_engine(extra_targets=ENVIRONMENTS, supervision=FAST) as engine:
        staging = await engine.deploy("staged", "2.0.0", environment="staging")
        assert (await engine.deployments.result(staging)).success

        async def refusal(version: str) -> str:
            attempt = await engine.deploy("staged", version, environment="production")
            result = await engine.deployments.result(attempt)
            assert result.state is DeploymentState.FAILED
            return result.error or ""

        assert "has been live in staging for 0 of 30 minutes" in await refusal("2.0.0")
        soaked(engine, "staged.staging", minutes=31)
        assert "staging runs release #1 (2.0.0) of **staged**, not 1.0.0" in await refusal("1.0.0")

        [process] = engine.processes()
        process.kill()

        async def restarted() -> bool:
            incidents = await engine.storage.incidents_of(
                "staged.staging", kinds=("restarted",), since="0"
            )
            return bool(incidents)

        await wait_until(restarted, what="supervision to restart staging's release")
        assert "crashed in staging since it went live" in await refusal("2.0.0")


async def test_a_bot_with_several_environments_needs_one_named(start_engine: StartEngine) -> None:
    async with start_engine(extra_targets=ENVIRONMENTS) as engine:
        result = await engine.deployments.result(await engine.deploy("staged", "1.0.0"))
        assert result.state is DeploymentState.FAILED
        assert "has several environments (production, staging)" in (result.error or "")
        unknown = await engine.deploy("staged", "1.0.0", environment="qa")
        error = (await engine.deployments.result(unknown)).error or ""
        assert "has no environment 'qa' (its environments: production, staging)" in error


async def test_a_restart_in_the_middle_of_a_promotion_changes_nothing(
    start_engine: StartEngine,
) -> None:
    async with start_engine(extra_targets=ENVIRONMENTS) as engine:
        staging = await engine.deploy("staged", "3.0.0", environment="staging")
        assert (await engine.deployments.result(staging)).success
        soaked(engine, "staged.staging", minutes=31)
        engine.gate.hold("deploy_to_platform")
        production = await engine.deploy("staged", "3.0.0", environment="production")
        await engine.status_when(production, lambda s: s.step == "Deploying to platform")
        # The worker stops and every release dies with it, as when shipcord's container stops.
        engine.workflow_ids.clear()
    async with start_engine(extra_targets=ENVIRONMENTS) as engine:
        engine.workflow_ids.extend([staging, production])
        result = await engine.deployments.result(production)
        assert result.success and result.environment == "production", result.error
        tokens = sorted(token_of(process) for process in engine.processes())
        assert tokens == sorted([ECHO_TOKEN, STAGING_TOKEN])
        [promoted] = await engine.storage.list_releases("staged.production")
        assert (promoted.version, promoted.status) == ("3.0.0", "active")
