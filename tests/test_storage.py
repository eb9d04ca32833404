"""Storage on a real SQLite file: pragmas, migrations, the one-open-deployment rule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from storage import DeploymentConflict, DuplicateWorkflowId, ReleasesInFlight, Storage
from storage.database import migration_scripts


async def test_database_uses_wal_foreign_keys_and_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "shipcord.db"
    async with await Storage.open(path):
        pass
    async with aiosqlite.connect(path) as raw:
        mode = await (await raw.execute("PRAGMA journal_mode")).fetchone()
        version = await (await raw.execute("PRAGMA user_version")).fetchone()
    assert mode is not None and mode[0] == "wal"
    assert version is not None and version[0] == migration_scripts()[-1][0]
    # Opening again applies nothing twice.
    async with await Storage.open(path) as again:
        assert await again.list_open_deployments() == []


async def test_second_open_deployment_of_a_bot_names_the_running_one(storage: Storage) -> None:
    await storage.reserve_deployment(
        workflow_id="deploy-echo-1", bot_name="echo", version="1.0.0", owner_id="7"
    )
    with pytest.raises(DeploymentConflict) as raised:
        await storage.reserve_deployment(
            workflow_id="deploy-echo-2", bot_name="echo", version="1.0.1", owner_id="8"
        )
    assert "deploy-echo-1" in str(raised.value)
    # Another request under the same id is a conflict too: it is never "the same" row.
    with pytest.raises(DeploymentConflict):
        await storage.reserve_deployment(
            workflow_id="deploy-echo-1", bot_name="echo", version="1.0.0", owner_id="9"
        )
    assert await storage.close_deployment(
        "deploy-echo-1", state="succeeded", error=None, result="{}"
    )
    assert not await storage.close_deployment(
        "deploy-echo-1", state="succeeded", error=None, result="{}"
    )
    # Once closed, its id is taken for good: a new deployment needs a new id.
    with pytest.raises(DuplicateWorkflowId):
        await storage.reserve_deployment(
            workflow_id="deploy-echo-1", bot_name="echo", version="1.0.1", owner_id="8"
        )
    await storage.reserve_deployment(
        workflow_id="deploy-echo-2", bot_name="echo", version="1.0.1", owner_id="8"
    )


async def test_a_discarded_reservation_leaves_nothing(storage: Storage) -> None:
    await storage.reserve_deployment(
        workflow_id="deploy-echo-1", bot_name="echo", version="1.0.0", owner_id="7"
    )
    await storage.discard_reservation("deploy-echo-1")
    assert await storage.get_deployment("deploy-echo-1") is None
    await storage.reserve_deployment(
        workflow_id="deploy-echo-2", bot_name="echo", version="1.0.0", owner_id="7"
    )


async def test_concurrent_reservations_let_exactly_one_through(tmp_path: Path) -> None:
    path = tmp_path / "shipcord.db"
    # Two connections, as two shipcord processes would have.
    async with await Storage.open(path) as first, await Storage.open(path) as second:
        attempts = [
            store.reserve_deployment(
                workflow_id=f"deploy-echo-{n}", bot_name="echo", version="1.0.0", owner_id="1"
            )
            for n, store in enumerate([first, second] * 5)
        ]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, DeploymentConflict) for o in outcomes if o not in winners)


async def test_releases_number_up_and_keep_the_previous(storage: Storage) -> None:
    first = await storage.create_release(
        workflow_id="w1",
        bot_name="echo",
        bot_type="discord",
        version="1.0.0",
        runtime="process",
        target="{}",
    )
    assert (first.number, first.previous_number) == (1, None)
    assert (
        await storage.create_release(
            workflow_id="w1",
            bot_name="echo",
            bot_type="discord",
            version="1.0.0",
            runtime="process",
            target="{}",
        )
        == first
    )
    await storage.activate_release(first)
    second = await storage.create_release(
        workflow_id="w2",
        bot_name="echo",
        bot_type="discord",
        version="1.1.0",
        runtime="process",
        target="{}",
    )
    assert (second.number, second.previous_number) == (2, 1)
    # While release 2 is in flight, no other deployment may create one.
    with pytest.raises(ReleasesInFlight) as in_flight:
        await storage.create_release(
            workflow_id="w3",
            bot_name="echo",
            bot_type="discord",
            version="1.2.0",
            runtime="process",
            target="{}",
        )
    assert [r.workflow_id for r in in_flight.value.releases] == ["w2"]
    await storage.activate_release(second)
    releases = {r.number: r.status for r in await storage.list_releases("echo")}
    assert releases == {1: "superseded", 2: "active"}
    await storage.roll_back_release(second)
    releases = {r.number: r.status for r in await storage.list_releases("echo")}
    assert releases == {1: "active", 2: "rolled_back"}
    bot = await storage.get_bot("echo")
    assert bot is not None and bot.active_release == 1


async def test_notification_claimed_once_and_snapshot_kept_first(storage: Storage) -> None:
    await storage.reserve_deployment(
        workflow_id="w", bot_name="echo", version="1.0.0", owner_id="1"
    )
    assert await storage.claim_notification("w")
    assert not await storage.claim_notification("w")
    assert await storage.save_command_snapshot("w", application_id="9", commands=[{"name": "a"}])
    assert not await storage.save_command_snapshot("w", application_id="9", commands=[])
    assert await storage.get_command_snapshot("w") == ("9", [{"name": "a"}])


async def test_the_latest_incident_by_key_prefix(storage: Storage) -> None:
    assert await storage.latest_incident_keyed("host:beta:") is None
    for key, kind in (
        ("host:beta:host_gone:1:echo", "host_gone"),
        ("host:betamax:host_gone:2:echo", "host_gone"),
        ("host:beta:host_back:3:echo", "host_back"),
        ("restart:7:x", "restarted"),
    ):
        await storage.record_incident(key=key, bot_name="echo", kind=kind, message="m")
    latest = await storage.latest_incident_keyed("host:beta:")
    assert latest is not None and latest.key == "host:beta:host_back:3:echo"
    latest = await storage.latest_incident_keyed("host:betamax:")
    assert latest is not None and latest.kind == "host_gone"
