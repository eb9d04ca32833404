"""A whole shipcord front end against real parts: the Discord API double (HTTP + WebSocket),
the real Temporal dev server with a real worker, real SQLite and real local processes.

One double, one worker and one ShipcordBot are shared per test module; tests use distinct
target bots so their deployments never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from temporalio.client import Client

from bot.discord_client import ShipcordBot
from bot.frontend_config import FrontEndConfig
from storage import Storage
from tests.discord_double import DiscordDouble, MessageRecord, MessageVersion, UserRecord
from tests.discord_double.state import MESSAGE_FLAG_LOADING, BotRecord, GuildRecord
from tests.engine.harness import kill_release_processes
from tests.ports import NEVER_HEALTHY
from workflows.deployment_client import DeploymentClient
from workflows.deployment_service import DeploymentService
from workflows.worker import engine_worker

REPO = Path(__file__).resolve().parents[2]
MANAGE_GUILD = 1 << 5
SHIPCORD_TOKEN = "shipcord-test-token." + "x" * 24
TARGET_TOKEN_ENV = "SHIPCORD_TEST_TARGET_TOKEN"
TARGET_TOKEN = "target-bot-token." + "y" * 24
ADMIN_ROLE = "deployers"
RELEASE_ROLE = "release"
WAIT = 30.0
# Bots the tests deploy: each test takes its own so no two deployments collide.
SLEEPERS = [f"sleeper-{n}" for n in range(20)]
FAILERS = [f"failer-{n}" for n in range(10)]
LOAD_BOTS = [f"load-{n:03d}" for n in range(100)]
QUICK_BOTS = [f"quick-{n}" for n in range(17)]
FLAKY_BOTS = [f"flaky-{n}" for n in range(2)]
PAIRED_BOT = "paired"


def targets_toml(health_gate_port: int) -> str:
    python = sys.executable
    blocks = [
        f"""
[bots.echo]
command = ["{python}", "-m", "examples.echo_bot", "--release", "{{version}}"]
token_env = "{TARGET_TOKEN_ENV}"
health_url = "http://127.0.0.1:{{port}}/healthz"
commands = "{REPO}/examples/echo_bot/commands.json"
healthy_after = 0
env = {{ PYTHONPATH = "{REPO}" }}
"""
    ]
    for name in SLEEPERS:
        # Healthy only once the test opens its gate: it stays in the health check for as
        # long as a test needs to pause or cancel it, whatever the machine's speed.
        blocks.append(
            f'[bots.{name}]\ncommand = ["sleep", "600"]\n'
            f'token_env = "{TARGET_TOKEN_ENV}"\nhealthy_after = 0\nhealth_timeout = 200\n'
            f'health_url = "http://127.0.0.1:{health_gate_port}/{name}"\n'
        )
    for name in FAILERS:
        # Starts, exits at once: the health check fails and the deploy is rolled back.
        blocks.append(
            f'[bots.{name}]\ncommand = ["{python}", "-c", "raise SystemExit(3)"]\n'
            f'token_env = "{TARGET_TOKEN_ENV}"\nhealthy_after = 1\n{NEVER_HEALTHY}'
        )
    for name in FLAKY_BOTS:
        # Healthy, then it crashes every time: what supervision restarts and gives up on.
        blocks.append(
            f'[bots.{name}]\ncommand = ["{python}", "-c", '
            '"import sys, time; time.sleep(1.5); sys.exit(7)"]\n'
            f'token_env = "{TARGET_TOKEN_ENV}"\nhealthy_after = 0.5\n'
        )
    for name in [*LOAD_BOTS, *QUICK_BOTS]:
        blocks.append(
            f'[bots.{name}]\ncommand = ["sleep", "600"]\n'
            f'token_env = "{TARGET_TOKEN_ENV}"\nhealthy_after = 0\n'
        )
    # Two environments; production takes only what staging runs, soaked.
    blocks.append(
        f'[bots.{PAIRED_BOT}]\ncommand = ["sleep", "600"]\n'
        f'token_env = "{TARGET_TOKEN_ENV}"\nhealthy_after = 0\n'
        f"[bots.{PAIRED_BOT}.environments.staging]\n"
        f"[bots.{PAIRED_BOT}.environments.production]\n"
        'promote_from = "staging"\nsoak = "30m"\n'
    )
    # Every target may be deployed by the release role (besides admins).
    return "\n".join(blocks).replace(
        f'token_env = "{TARGET_TOKEN_ENV}"',
        f'token_env = "{TARGET_TOKEN_ENV}"\ndeploy_roles = ["{RELEASE_ROLE}"]',
    )


@dataclass
class World:
    double: DiscordDouble
    app: BotRecord
    target_bot: BotRecord
    guild: GuildRecord
    channel_id: int
    other_guild: GuildRecord
    other_channel_id: int
    owner: UserRecord
    stranger: UserRecord
    admin: UserRecord
    manager: UserRecord
    outsider: UserRecord  # a member of the other server only
    founder: UserRecord  # owns both servers
    deployer: UserRecord  # has the release role, like the owner
    unconfigured_guild: GuildRecord  # has shipcord, but shipcord does not serve it
    unconfigured_channel_id: int
    unconfigured_member: UserRecord
    elsewhere_deployer: UserRecord  # has Elsewhere's release role


@dataclass
class Engine:
    client: Client
    task_queue: str
    storage: Storage
    data_dir: Path
    targets_file: Path
    deployments: DeploymentClient


@dataclass
class Front:
    """The running front end plus helpers to talk to it as a Discord user would."""

    world: World
    engine: Engine
    bot: ShipcordBot
    started: list[ShipcordBot] = field(default_factory=list)
    health_gate: HealthGate | None = None

    @property
    def double(self) -> DiscordDouble:
        return self.world.double

    async def more_board_passes(self, count: int) -> None:
        """Wait until the progress board has made `count` more passes than it has now.

        Board passes change nothing in the double when there is nothing to edit, so this
        polls the bot itself (with a deadline) instead of waiting on the double's state.
        """
        target = self.bot.board.passes + count
        deadline = asyncio.get_running_loop().time() + WAIT
        while self.bot.board.passes < target:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the progress board did not make {count} more passes")
            await asyncio.sleep(0.02)

    def let_finish(self, bot_name: str) -> None:
        """Let a sleeper bot's health check pass, so that its deployment can finish."""
        assert self.health_gate is not None
        self.health_gate.open.add(bot_name)

    async def command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: UserRecord,
        channel: int | None = None,
    ) -> str:
        """Run a slash command as `user` and return the text of the answer they see."""
        record = await self.double.dispatch_command(
            self.world.app,
            name,
            options or {},
            user=user,
            channel=channel or self.world.channel_id,
        )
        await self.double.wait_for_interaction_reply(record.id, timeout=WAIT)
        return reply_text(self.double, record.id)

    async def click(self, message: MessageRecord, action: str, *, user: UserRecord) -> str:
        custom_id = next(
            component["custom_id"]
            for row in message.components
            for component in row.get("components", [])
            if component.get("custom_id", "").startswith(f"shipcord:{action}:")
        )
        record = await self.double.dispatch_component(
            self.world.app, message.id, custom_id, user=user
        )
        await self.double.wait_for_interaction_reply(record.id, timeout=WAIT)
        return reply_text(self.double, record.id)

    async def deploy(self, bot_name: str, version: str = "1.0.0", *, user: UserRecord) -> str:
        """Deploy and return the workflow id (asserting the deploy was accepted: the answer
        is the public progress message)."""
        answer = await self.command("deploy", {"bot": bot_name, "version": version}, user=user)
        assert answer.startswith("Deploying"), answer
        return answer.split("`")[3]

    async def progress_message(self, workflow_id: str) -> MessageRecord:
        record = await self.engine.storage.get_deployment(workflow_id)
        assert record is not None
        await self.double.wait_for(
            lambda: self._message_id(workflow_id), WAIT, f"progress message of {workflow_id}"
        )
        message_id = self._message_id(workflow_id)
        return self.double.message(message_id)

    def _message_id(self, workflow_id: str) -> int | None:
        found = progress_messages(self.double, self.world.channel_id, workflow_id)
        return found[0].id if found else None

    async def wait_for_text(self, message: MessageRecord, *needles: str) -> MessageRecord:
        try:
            await self.double.wait_for(
                lambda: all(needle in shown(message) for needle in needles),
                WAIT,
                f"message {message.id} to contain {needles}",
            )
        except TimeoutError:
            rows = await self.engine.storage.list_deployments(limit=5)
            history = [shown_version(version) for version in message.versions]
            raise AssertionError(f"{needles} never shown: {history}; rows: {rows}") from None
        return message

    async def restart(self) -> ShipcordBot:
        await stop_shipcord(self.bot)
        self.bot = await start_shipcord(self.world, self.engine)
        self.started.append(self.bot)
        return self.bot


def deployers(front: Front, count: int) -> list[UserRecord]:
    """`count` members of the server who may deploy (the admin role)."""
    double, guild = front.double, front.world.guild
    role = next(
        r for r in double.state.roles.values() if r.guild_id == guild.id and r.name == ADMIN_ROLE
    )
    users = []
    for index in range(count):
        user = double.add_user(f"deployer-{len(double.state.users)}-{index}")
        double.add_member(guild.id, user.id, roles=[role.id])
        users.append(user)
    return users


def reply_text(double: DiscordDouble, interaction_id: int) -> str:
    """The text of the answer as the person first saw it (a progress message that answers
    /deploy is edited on; its first form is the answer)."""
    record = double.interaction(interaction_id)
    message_id = record.reply_message_id
    assert message_id is not None, f"interaction {interaction_id} has no reply message"
    message = double.message(message_id)
    return next(v.content for v in message.versions if not v.flags & MESSAGE_FLAG_LOADING)


def shown(message: MessageRecord) -> str:
    """What a person sees of a message: its text and its embeds' text."""
    return message.text()


def shown_version(version: MessageVersion) -> str:
    return shown(
        MessageRecord(
            id=0, channel_id=0, guild_id=None, author_id=0, content=version.content,
            embeds=version.embeds,
        )
    )  # fmt: skip


def progress_messages(
    double: DiscordDouble, channel_id: int, workflow_id: str
) -> list[MessageRecord]:
    """The public messages of a bot in the channel that show `workflow_id`: its progress
    message (/deploy's answer, or a channel message); failure notices are replies."""
    return [
        message
        for message in double.messages(channel_id)
        if double.state.user(message.author_id).bot
        and message.message_reference is None
        and not message.ephemeral
        and workflow_id in shown(message)
    ]


def notices_for(double: DiscordDouble, channel_id: int, workflow_id: str) -> list[MessageRecord]:
    """Replies in the channel that announce a failure of `workflow_id`."""
    return [
        message
        for message in double.messages(channel_id)
        if message.message_reference is not None
        and not message.ephemeral
        and workflow_id in message.content
        and "failed" in message.content
    ]


def make_config(world: World, engine: Engine, **overrides: Any) -> FrontEndConfig:
    values: dict[str, Any] = {
        "targets_file": engine.targets_file,
        "api_base": world.double.api_base,
        "dev_guild_id": world.guild.id,
        "guild_ids": frozenset({str(world.guild.id), str(world.other_guild.id)}),
        "admin_role": ADMIN_ROLE,
        "web_ui_base": "http://temporal-ui.test",
        "progress_interval": 0.25,
    }
    values.update(overrides)
    return FrontEndConfig(**values)


async def start_shipcord(
    world: World,
    engine: Engine,
    *,
    service: DeploymentService | None = None,
    config: dict[str, Any] | None = None,
    **options: Any,
) -> ShipcordBot:
    bot = ShipcordBot(
        config=make_config(world, engine, **(config or {})),
        service=service or DeploymentService(engine.deployments, engine.storage),
        storage=engine.storage,
        guild_ready_timeout=0.2,
        **options,
    )
    runner = asyncio.create_task(bot.start(SHIPCORD_TOKEN), name="shipcord-under-test")
    bot.__dict__["_test_runner"] = runner
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({runner, ready}, timeout=WAIT, return_when="FIRST_COMPLETED")
    if runner in done:
        ready.cancel()
        runner.result()  # raises what stopped the bot
    assert ready in done, "shipcord did not become ready"
    await world.double.wait_for_bot_ready(world.app, timeout=WAIT)
    return bot


async def stop_shipcord(bot: ShipcordBot) -> None:
    await bot.close()
    runner: asyncio.Task[None] | None = bot.__dict__.get("_test_runner")
    if runner is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, timeout=WAIT)


# -- fixtures ------------------------------------------------------------------------------


def build_world(double: DiscordDouble) -> World:
    founder = double.add_user("founder")
    guild = double.add_guild("Ops", owner_id=founder.id, channels=("deploys",))
    other_guild = double.add_guild("Elsewhere", owner_id=founder.id, channels=("general",))
    unconfigured = double.add_guild("Nowhere", owner_id=founder.id, channels=("general",))
    app = double.add_bot(SHIPCORD_TOKEN, "shipcord", guilds=[guild, other_guild, unconfigured])
    target_bot = double.add_bot(TARGET_TOKEN, "target-bot")
    admin_role = double.add_role(guild.id, ADMIN_ROLE)
    manager_role = double.add_role(guild.id, "server-managers", permissions=MANAGE_GUILD)
    release_role = double.add_role(guild.id, RELEASE_ROLE)
    owner = double.add_user("alice")
    stranger = double.add_user("mallory")
    admin = double.add_user("ada")
    manager = double.add_user("max")
    outsider = double.add_user("olga")
    deployer = double.add_user("dora")
    wanderer = double.add_user("uma")
    double.add_member(guild.id, stranger.id)
    double.add_member(guild.id, owner.id, roles=[release_role.id])
    double.add_member(guild.id, deployer.id, roles=[release_role.id])
    double.add_member(other_guild.id, owner.id)
    double.add_member(other_guild.id, outsider.id, roles=[])
    double.add_member(guild.id, admin.id, roles=[admin_role.id])
    double.add_member(guild.id, manager.id, roles=[manager_role.id])
    double.add_member(unconfigured.id, wanderer.id)
    elsewhere_release = double.add_role(other_guild.id, RELEASE_ROLE)
    eve = double.add_user("eve")
    double.add_member(other_guild.id, eve.id, roles=[elsewhere_release.id])
    assert guild.default_channel_id is not None and other_guild.default_channel_id is not None
    assert unconfigured.default_channel_id is not None
    return World(
        double=double,
        app=app,
        target_bot=target_bot,
        guild=guild,
        channel_id=guild.default_channel_id,
        other_guild=other_guild,
        other_channel_id=other_guild.default_channel_id,
        owner=owner,
        stranger=stranger,
        admin=admin,
        manager=manager,
        outsider=outsider,
        founder=founder,
        deployer=deployer,
        unconfigured_guild=unconfigured,
        unconfigured_channel_id=unconfigured.default_channel_id,
        unconfigured_member=wanderer,
        elsewhere_deployer=eve,
    )


@pytest.fixture(scope="module")
def double_options() -> dict[str, Any]:
    """Override in a test module to change the double's buckets.

    Interactions must be acknowledged within Discord's 3 s, as on the real service.
    """
    return {"interaction_deadline": 3.0}


@pytest.fixture(scope="module")
def shipcord_options() -> dict[str, Any]:
    """Override in a test module to change ShipcordBot's pacing (or, with the key
    `config`, its FrontEndConfig)."""
    return {}


@pytest.fixture(scope="module")
async def world(double_options: dict[str, Any]) -> AsyncIterator[World]:
    async with DiscordDouble(**double_options) as double:
        yield build_world(double)


class HealthGate:
    """The health endpoint of the sleeper bots: 503 until the test lets a bot through."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def health(request: web.Request) -> web.Response:
            healthy = request.match_info["bot"] in self.open
            return web.Response(status=200 if healthy else 503)

        app = web.Application()
        app.router.add_get("/{bot}", health)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(scope="module")
async def health_gate() -> AsyncIterator[HealthGate]:
    gate = HealthGate()
    await gate.start()
    try:
        yield gate
    finally:
        await gate.stop()


@pytest.fixture(scope="module")
def engine_options() -> dict[str, Any]:
    """Override in a test module to change the worker (for example, to supervise)."""
    return {}


@pytest.fixture(scope="module")
async def engine(
    temporal_client: Client,
    world: World,
    health_gate: HealthGate,
    tmp_path_factory: pytest.TempPathFactory,
    engine_options: dict[str, Any],
) -> AsyncIterator[Engine]:
    import os

    os.environ[TARGET_TOKEN_ENV] = TARGET_TOKEN
    data_dir = tmp_path_factory.mktemp("shipcord")
    targets_file = data_dir / "targets.toml"
    targets_file.write_text(targets_toml(health_gate.port), encoding="utf-8")
    task_queue = f"bot-{uuid.uuid4().hex[:12]}"
    storage = await Storage.open(data_dir / "shipcord.db")
    try:
        async with engine_worker(
            temporal_client,
            task_queue=task_queue,
            storage=storage,
            targets_file=targets_file,
            data_dir=data_dir,
            discord_api_base=world.double.api_base,
            **engine_options,
        ):
            yield Engine(
                client=temporal_client,
                task_queue=task_queue,
                storage=storage,
                data_dir=data_dir,
                targets_file=targets_file,
                deployments=DeploymentClient(temporal_client, task_queue),
            )
    finally:
        # The deployed bots are meant to outlive shipcord: stop this module's.
        kill_release_processes(data_dir)
        await storage.close()


@pytest.fixture(scope="module")
async def front(
    world: World, engine: Engine, health_gate: HealthGate, shipcord_options: dict[str, Any]
) -> AsyncIterator[Front]:
    bot = await start_shipcord(world, engine, **shipcord_options)
    front = Front(world=world, engine=engine, bot=bot, started=[bot], health_gate=health_gate)
    try:
        yield front
    finally:
        await stop_shipcord(front.bot)


Waiter = Callable[[], Any]
