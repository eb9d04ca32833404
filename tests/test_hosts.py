"""Past one machine: two hosts simulated on this one, as two `shipcord worker --host`
processes with their own data folders, one `shipcord bot`, one Temporal server.

Each host's state stays on it (its own SQLite, its own release logs); what touches a
release runs on its host; a host whose worker is gone makes its deployments fail clearly
while the other host carries on, and its owners hear of it once when it goes and once
when it comes back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from shipcord.payload_codec import data_converter
from storage import DeploymentRecord, ReleaseRecord, Storage
from tests.cli_world import (
    ECHO_TOKEN,
    Shipcord,
    World,
    on_shared_temporal,
    running_world,
    start_shipcord,
)
from tests.ports import free_port
from workflows.host_directory import HostDirectory, known_hosts
from workflows.hosts import host_gone_message, host_task_queue
from workflows.models import DeploymentResult
from workflows.targets import TargetRegistry

HOSTS = ("alpha", "beta")
# The bots' token variables of the world's environment (tests.cli_world).
WORLD_BOT_TOKENS = ("SHIPCORD_TEST_ECHO_TOKEN", "SHIPCORD_TEST_BAD_TOKEN")
START_TIMEOUT = 4.0


def token_variable(host: str) -> str:
    """Each host's bots have their own token variable, which only that host's worker has."""
    return f"{host.upper()}_BOT_TOKEN"


def pinned(bot: str, host: str, command: str = '["sleep", "600"]') -> str:
    return (
        f'\n[bots.{bot}]\ncommand = {command}\ntoken_env = "{token_variable(host)}"\n'
        f'healthy_after = 0.5\nhost = "{host}"\n'
    )


TARGETS = (
    pinned("on-alpha", "alpha")
    + pinned("on-beta", "beta")
    + pinned("fail-beta", "beta", '["sh", "-c", "exit 3"]')
)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_world(tmp_path, TARGETS) as started:
        yield started


async def eventually(
    condition: Callable[[], Awaitable[object]], what: str, timeout: float = 30.0
) -> object:
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.1)
    return value


class Cluster:
    def __init__(self, world: World, client: Client, env: dict[str, str]) -> None:
        self.world = world
        self.client = client
        # No bot's token: each worker is given its own host's (`start_worker`).
        self.env = {k: v for k, v in env.items() if k not in WORLD_BOT_TOKENS}
        self.workers: dict[str, Shipcord] = {}

    def data_dir(self, host: str) -> Path:
        return self.world.data_dir.parent / host

    async def start_worker(self, host: str) -> None:
        # A worker holds only the tokens of the bots its host runs.
        env = dict(self.env, SHIPCORD_DATA_DIR=str(self.data_dir(host)))
        env[token_variable(host)] = ECHO_TOKEN
        worker = await start_shipcord(self.world, "worker", "--host", host, env=env)
        await worker.wait_for_line(f"host {host}")
        self.workers[host] = worker

    async def releases(self, host: str, bot: str) -> list[ReleaseRecord]:
        async with await Storage.open(self.data_dir(host) / "shipcord.db") as storage:
            return await storage.list_releases(bot)

    async def incidents(self, where: Path, bot: str, kind: str) -> list[str]:
        async with await Storage.open(where / "shipcord.db") as storage:
            return [
                i.message
                for i in await storage.recent_incidents(since="")
                if i.bot_name == bot and i.kind == kind
            ]

    async def command(self, name: str, options: dict[str, object]) -> str:
        world = self.world
        interaction = await world.double.dispatch_command(
            world.shipcord_bot_id,
            name,
            options,
            user=world.owner_id,
            guild=world.guild_id,
            channel=world.channel_id,
        )
        await world.double.wait_for_interaction_reply(interaction.id, timeout=15)
        reply = world.double.interaction_reply(interaction.id)
        return reply.content if reply is not None else ""

    async def deploy(self, bot: str, version: str) -> None:
        await self.command("deploy", {"bot": bot, "version": version})

    async def ended(self, bot: str, version: str, timeout: float = 60.0) -> DeploymentResult:
        async def closed() -> DeploymentRecord | None:
            async with await Storage.open(self.world.data_dir / "shipcord.db") as storage:
                for record in await storage.list_deployments_of_bot(bot, limit=5):
                    if record.version == version and not record.is_open:
                        return record
            return None

        record = await eventually(closed, f"{bot} {version} to end", timeout)
        assert isinstance(record, DeploymentRecord)
        handle = self.client.get_workflow_handle(record.workflow_id, result_type=DeploymentResult)
        return await handle.result()


def release_pid(record: ReleaseRecord) -> int:
    assert record.runtime_handle is not None
    return int(json.loads(record.runtime_handle)["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_hosts_keep_their_own_releases_and_a_lost_host_is_a_clear_state(
    world: World, temporal_client: Client, task_queue: str
) -> None:
    env = on_shared_temporal(
        world,
        temporal_client,
        task_queue,
        SHIPCORD_DEFAULT_HOST="alpha",
        SHIPCORD_RECONCILE_INTERVAL="1",
        SHIPCORD_HOST_START_TIMEOUT=str(START_TIMEOUT),
        # The test server's workers poll every 2 s (tests/conftest.py).
        SHIPCORD_HOST_HEARTBEAT_TIMEOUT="5",
        SHIPCORD_HOST_WATCH_INTERVAL="0.5",
    )
    # Every target pinned to a host (the world's own targets are not).
    targets_file = Path(world.env["SHIPCORD_TARGETS_FILE"])
    await asyncio.to_thread(targets_file.write_text, TARGETS, "utf-8")
    cluster = Cluster(world, temporal_client, env)
    for host in HOSTS:
        await cluster.start_worker(host)
    # The front end without SHIPCORD_DEFAULT_HOST: every target is pinned.
    front_env = {k: v for k, v in cluster.env.items() if k != "SHIPCORD_DEFAULT_HOST"}
    front = await start_shipcord(world, "bot", env=front_env)
    await world.double.wait_for_bot_ready(world.shipcord_bot_id, timeout=30)

    # A target pinned to each host deploys there, and only there.
    await cluster.deploy("on-alpha", "1.0.0")
    await cluster.deploy("on-beta", "1.0.0")
    for bot, host, other in (("on-alpha", "alpha", "beta"), ("on-beta", "beta", "alpha")):
        result = await cluster.ended(bot, "1.0.0")
        assert result.success, result.error
        assert result.host == host
        [release] = await cluster.releases(host, bot)
        assert release.status == "active"
        assert json.loads(release.target or "{}")["host"] == host
        assert alive(release_pid(release))
        assert list((cluster.data_dir(host) / "releases").glob(f"{bot}-1*.log"))
        assert await cluster.releases(other, bot) == []
        assert not list((cluster.data_dir(other) / "releases").glob(f"{bot}-*"))

    # A rollback happens on the right host.
    await cluster.deploy("fail-beta", "1.0.0")
    failed = await cluster.ended("fail-beta", "1.0.0")
    assert not failed.success and failed.host == "beta"
    assert all(c.ok for c in failed.compensations), failed.compensations
    assert [r.status for r in await cluster.releases("beta", "fail-beta")] == ["rolled_back"]
    assert await cluster.releases("alpha", "fail-beta") == []
    # A finished deployment's detail names its host.
    async with await Storage.open(world.data_dir / "shipcord.db") as storage:
        [record] = await storage.list_deployments_of_bot("fail-beta", limit=1)
    detail = await cluster.command("status", {"deployment": record.workflow_id})
    assert "Host: beta" in detail, detail

    # A release that dies is restarted by its own host's supervisor.
    [release] = await cluster.releases("alpha", "on-alpha")
    os.kill(release_pid(release), signal.SIGKILL)
    await eventually(
        lambda: cluster.incidents(cluster.data_dir("alpha"), "on-alpha", "restarted"),
        "alpha's supervisor to restart on-alpha",
    )
    [release] = await cluster.releases("alpha", "on-alpha")
    assert alive(release_pid(release))
    assert not await cluster.incidents(cluster.data_dir("beta"), "on-alpha", "restarted")
    # The front end, with a database of its own, hears of it from alpha's supervisor.
    await world.double.wait_for_message(
        world.channel_id,
        lambda m: m.content.startswith("🔁") and "**on-alpha**" in m.content,
        timeout=20,
    )

    listing = await cluster.command("status", {})
    assert "**alpha**: up" in listing and "**beta**: up" in listing, listing
    assert "**local**" not in listing, listing
    history = await cluster.command("history", {"bot": "on-beta"})
    assert "#1 on beta " in history, history

    # Host beta is lost (its worker, and the bot running there, killed).
    [beta_release] = await cluster.releases("beta", "on-beta")
    cluster.workers["beta"].process.kill()
    await cluster.workers["beta"].finish()
    os.kill(release_pid(beta_release), signal.SIGKILL)
    started = time.monotonic()
    await cluster.deploy("on-beta", "2.0.0")
    await cluster.deploy("on-alpha", "2.0.0")
    lost = await cluster.ended("on-beta", "2.0.0")
    assert not lost.success
    assert lost.error == host_gone_message("beta") == "host beta has no running worker"
    # It failed at the first host step, the token check, before anything was recorded.
    assert lost.compensations == [], lost.compensations
    assert (lost.host, lost.step) == ("beta", "Validating configuration")
    # Validation and the token check on the host: each waits at most the schedule-to-start
    # timeout (plus a sticky workflow task moving off the dead worker).
    assert time.monotonic() - started < 4 * START_TIMEOUT + 10
    carried_on = await cluster.ended("on-alpha", "2.0.0")
    assert carried_on.success, carried_on.error
    assert [r.status for r in await cluster.releases("alpha", "on-alpha")] == [
        "superseded",
        "active",
    ]

    # Its owner is told once, in the channel and by DM; /status says the host is gone.
    gone = "Host **beta** has no running worker"
    await world.double.wait_for_message(
        world.channel_id, lambda m: gone in m.content and "on-beta" in m.content, timeout=20
    )
    await world.double.wait_for_message(
        dm_user=world.owner_id, predicate=lambda m: gone in m.content, timeout=20
    )
    listing = await cluster.command("status", {})
    assert "**beta**: no running worker" in listing, listing

    # Host beta comes back: its worker starts again the release that stopped while it was
    # down (no crash: not counted, not told), and the owner hears of the host once.
    killed = release_pid(beta_release)
    await cluster.start_worker("beta")
    [beta_release] = await cluster.releases("beta", "on-beta")
    assert beta_release.status == "active" and alive(release_pid(beta_release))
    assert release_pid(beta_release) != killed
    assert await cluster.incidents(cluster.data_dir("beta"), "on-beta", "restarted") == []
    back = "Host **beta** is back"
    await world.double.wait_for_message(
        world.channel_id, lambda m: back in m.content and "on-beta" in m.content, timeout=20
    )
    # One notice per affected bot and change (/status replies quote incidents too).
    notices = [
        m.content
        for m in world.double.messages(world.channel_id)
        if m.content.startswith(("🔴", "🟢")) and "**on-beta**" in m.content
    ]
    assert sum(gone in text for text in notices) == 1, notices
    assert sum(back in text for text in notices) == 1, notices
    assert await cluster.incidents(world.data_dir, "on-alpha", "host_gone") == []

    for process in (front, *cluster.workers.values()):
        process.process.send_signal(signal.SIGTERM)
        assert await process.finish() == 0


async def test_a_worker_needs_only_its_own_hosts_tokens(
    world: World, temporal_client: Client, task_queue: str
) -> None:
    # The issue "Several hosts without holes": validation runs on the shared queue, where
    # any worker may take it, and must not need the token of a bot of another host.
    env = on_shared_temporal(
        world,
        temporal_client,
        task_queue,
        SHIPCORD_DEFAULT_HOST="alpha",
        # Alpha's worker starts only once the deployment waits for it.
        SHIPCORD_HOST_START_TIMEOUT="60",
    )
    targets_file = Path(world.env["SHIPCORD_TARGETS_FILE"])
    await asyncio.to_thread(targets_file.write_text, TARGETS, "utf-8")
    cluster = Cluster(world, temporal_client, env)
    # Only beta's worker, with beta's token alone: it is the one that validates.
    await cluster.start_worker("beta")
    front = await start_shipcord(world, "bot", env=cluster.env)
    await world.double.wait_for_bot_ready(world.shipcord_bot_id, timeout=30)

    await cluster.deploy("on-alpha", "1.0.0")

    async def token_check_scheduled() -> bool:
        async with await Storage.open(world.data_dir / "shipcord.db") as storage:
            records = await storage.list_deployments_of_bot("on-alpha", limit=1)
        if not records:
            return False
        handle = temporal_client.get_workflow_handle(
            records[0].workflow_id, result_type=DeploymentResult
        )
        if not records[0].is_open:
            ended = await handle.result()
            raise AssertionError(f"on-alpha ended before reaching alpha: {ended.error}")
        history = await handle.fetch_history()
        return any(
            event.activity_task_scheduled_event_attributes.activity_type.name == "check_bot_token"
            for event in history.events
            if event.HasField("activity_task_scheduled_event_attributes")
        )

    # Validated by beta's worker, which has no token of on-alpha; the token is read on alpha.
    await eventually(token_check_scheduled, "on-alpha to be validated and wait for alpha")
    # Its card says what it waits for meanwhile.
    waiting = "Waiting for host **alpha**, which has no running worker now"
    await world.double.wait_for_message(world.channel_id, lambda m: waiting in m.text(), timeout=30)
    await cluster.start_worker("alpha")
    result = await cluster.ended("on-alpha", "1.0.0")
    assert result.success, result.error
    assert result.host == "alpha"
    [release] = await cluster.releases("alpha", "on-alpha")
    assert release.status == "active" and alive(release_pid(release))

    # And the other way round, whichever worker validates it.
    await cluster.deploy("on-beta", "1.0.0")
    result = await cluster.ended("on-beta", "1.0.0")
    assert result.success, result.error
    assert result.host == "beta"

    # A token missing on its own host still fails at once, with the reason, and no retry.
    await asyncio.to_thread(
        targets_file.write_text,
        TARGETS + '\n[bots.tokenless]\ncommand = ["sleep", "600"]\ntoken_env = "NOBODY_BOT_TOKEN"\n'
        'host = "beta"\n',
        "utf-8",
    )
    await cluster.deploy("tokenless", "1.0.0")
    failed = await cluster.ended("tokenless", "1.0.0")
    assert not failed.success and failed.host == "beta"
    assert failed.error is not None and failed.error.startswith("No token for tokenless"), (
        failed.error
    )
    assert "NOBODY_BOT_TOKEN" in failed.error
    assert await cluster.releases("beta", "tokenless") == []

    for process in (front, *cluster.workers.values()):
        process.process.send_signal(signal.SIGTERM)
        assert await process.finish() == 0


@activity.defn(name="shipcord_test_noop")
async def noop() -> None:
    return None


async def test_a_host_no_target_uses_and_no_worker_announced_is_not_listed(
    tmp_path: Path, temporal_client: Client, task_queue: str
) -> None:
    # Every target pinned, and the front end without SHIPCORD_DEFAULT_HOST: `local` is
    # nobody's host, and no worker of it was ever seen.
    targets_file = tmp_path / "targets.toml"
    targets_file.write_text(TARGETS)
    directory = HostDirectory(
        temporal_client,
        task_queue,
        names=known_hosts(TargetRegistry(targets_file), "local"),
        heartbeat_timeout=30,
        default_host="local",
    )
    described = await directory.describe()
    assert [(h.name, h.alive, h.last_heartbeat) for h in described] == [
        ("alpha", False, None),
        ("beta", False, None),
    ]

    # A worker announces the default host: it is listed, though no target uses it.
    async with Worker(
        temporal_client, task_queue=host_task_queue(task_queue, "local"), activities=[noop]
    ):

        async def local_listed() -> bool:
            return "local" in [h.name for h in await directory.describe() if h.alive]

        await eventually(local_listed, "the worker of local to be seen")

    # A target without a host runs on the default host: it is listed, worker or not.
    targets_file.write_text(
        TARGETS + '\n[bots.anywhere]\ncommand = ["true"]\ntoken_env = "SHIPCORD_TEST_ECHO_TOKEN"\n'
    )
    other = HostDirectory(
        temporal_client,
        f"{task_queue}-unseen",
        names=known_hosts(TargetRegistry(targets_file), "local"),
        heartbeat_timeout=30,
        default_host="local",
    )
    assert [h.name for h in await other.describe()] == ["alpha", "beta", "local"]


# Prints its token (which no log answer may show), then runs.
TALKER = (
    '\n[bots.talk-beta]\ncommand = ["sh", "-c", "echo started with $DISCORD_TOKEN; sleep 600"]\n'
    f'token_env = "{token_variable("beta")}"\nhealthy_after = 0.5\nhost = "beta"\n'
)
PAYLOAD_KEY = "c2hpcGNvcmQtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE="


async def test_a_front_end_on_its_own_reads_releases_and_logs_from_their_host(
    world: World, temporal_client: Client, task_queue: str
) -> None:
    env = on_shared_temporal(
        world,
        temporal_client,
        task_queue,
        SHIPCORD_DEFAULT_HOST="alpha",
        # Release output crosses Temporal only encrypted.
        SHIPCORD_PAYLOAD_KEY=PAYLOAD_KEY,
    )
    targets_file = Path(world.env["SHIPCORD_TARGETS_FILE"])
    await asyncio.to_thread(targets_file.write_text, TARGETS + TALKER, "utf-8")
    keyed = Client(
        temporal_client.service_client,
        namespace=temporal_client.namespace,
        data_converter=data_converter(base64.b64decode(PAYLOAD_KEY)),
    )
    cluster = Cluster(world, keyed, env)
    # Each process with a key serves the codec endpoint for the Web UI: one port each.
    for host in HOSTS:
        cluster.env["SHIPCORD_CODEC_PORT"] = str(free_port())
        await cluster.start_worker(host)
    cluster.env["SHIPCORD_CODEC_PORT"] = str(free_port())
    front = await start_shipcord(world, "bot", env=cluster.env)
    await world.double.wait_for_bot_ready(world.shipcord_bot_id, timeout=30)

    for version in ("1.0.0", "2.0.0"):
        await cluster.deploy("talk-beta", version)
        assert (await cluster.ended("talk-beta", version)).success

    logs = await cluster.command("logs", {"bot": "talk-beta", "release": 1})
    assert logs.startswith("Log of **talk-beta** release #1:"), logs
    assert "started with" in logs and ECHO_TOKEN not in logs
    rollback = await cluster.command("rollback", {"bot": "talk-beta"})
    assert rollback.startswith("Deploying **talk-beta** `1.0.0`"), rollback
    restoring = keyed.get_workflow_handle(rollback.split("`")[3], result_type=DeploymentResult)
    restored = await restoring.result()
    assert restored.success and restored.restored_release == 1

    async def numbered() -> bool:
        # Release numbers come from beta, the rollback's once the front end closed it.
        history = await cluster.command("history", {"bot": "talk-beta"})
        return "#3 (rollback to #1) on beta `1.0.0`" in history and "#1 on beta" in history

    await eventually(numbered, "/history to number the rollback's release")

    # Beta gone: the answer says so, and nothing untrue.
    cluster.workers["beta"].process.send_signal(signal.SIGTERM)
    assert await cluster.workers.pop("beta").finish() == 0
    gone = await cluster.command("logs", {"bot": "talk-beta"})
    assert "host beta has no running worker now" in gone, gone

    for process in (front, *cluster.workers.values()):
        process.process.send_signal(signal.SIGTERM)
        assert await process.finish() == 0
