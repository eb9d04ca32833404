"""Running shipcord: embedded Temporal (when no address is set), worker and Discord bot."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from typing import TextIO

import discord
import structlog
from temporalio.client import Client

from bot.discord_client import ShipcordBot
from bot.frontend_config import FrontEndConfig
from shipcord import logs
from shipcord.codec_server import start_codec_server
from shipcord.data_dir import DataDirProblem, prepare_data_dir
from shipcord.embedded_temporal import EmbeddedTemporal, EmbeddedTemporalError
from shipcord.exits import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME
from shipcord.logs import configure_logging, register_secret
from shipcord.metrics import (
    PrometheusMeter,
    count_discord_rate_limits,
    embedded_temporal_restarts_total,
    start_metrics_server,
)
from shipcord.payload_codec import EncryptionCodec
from shipcord.settings import ENV_FILE, Settings
from shipcord.temporal_client import MetricsPortInUse, TemporalUnavailable, connect_temporal
from storage import Storage
from workflows import tokens
from workflows.deployment_client import DeploymentClient
from workflows.deployment_service import DeploymentService
from workflows.host_directory import HostDirectory, known_hosts
from workflows.host_watch import HostWatch
from workflows.release_logs import ReleaseLogs
from workflows.release_reading import HostReleases
from workflows.supervision_rounds import SupervisionSettings
from workflows.targets import TargetRegistry, TargetsError, load_targets
from workflows.worker import engine_worker

log = structlog.get_logger(__name__)
# The dev server stops in about a second on SIGTERM; SIGKILL after this.
EMBEDDED_STOP_SECONDS = 3.0


class StartupError(Exception):
    """A problem a person can fix; its message is one line and the exit status is given."""

    def __init__(self, message: str, exit_code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def prepare(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    register_secret(settings.discord_token)
    register_secret(settings.temporal_api_key)
    register_secret(settings.payload_key)
    # Target tokens may sit in the same .env as shipcord's own settings.
    tokens.use_env_file(ENV_FILE)
    count_discord_rate_limits()


def report(message: str) -> None:
    """A problem that stops shipcord: one line on stderr (a JSON error event in JSON mode)."""
    logs.report_problem(f"shipcord: {message}")


def front_end_config(settings: Settings) -> FrontEndConfig:
    """What the Discord front end needs to know of the settings, and nothing more."""
    return FrontEndConfig(
        targets_file=settings.targets_file,
        api_base=settings.discord_api_base,
        admin_role=settings.admin_role,
        dev_guild_id=settings.discord_dev_guild_id,
        guild_ids=frozenset(str(guild_id) for guild_id in settings.configured_guild_ids),
        leave_unconfigured_guilds=settings.leave_unconfigured_guilds,
        progress_interval=settings.progress_interval,
        web_ui_base=settings.web_ui_base,
        namespace=settings.temporal_namespace,
    )


def require_token(settings: Settings) -> str:
    if settings.discord_token is None:
        raise StartupError(
            "DISCORD_TOKEN is not set: create a bot in the Discord developer portal and put "
            "its token in .env (see README.md)"
        )
    return settings.discord_token.get_secret_value()


def require_targets(settings: Settings) -> None:
    try:
        load_targets(settings.targets_file)
    except TargetsError as error:
        raise StartupError(str(error)) from None


async def start_temporal(
    settings: Settings, stack: AsyncExitStack
) -> tuple[str, str | None, EmbeddedTemporal | None]:
    """The Temporal address to use, its Web UI, and the embedded server if one was started."""
    if not settings.embedded_temporal:
        assert settings.temporal_address is not None
        return settings.temporal_address, settings.web_ui_base, None
    embedded = EmbeddedTemporal.from_settings(settings, stop_timeout=EMBEDDED_STOP_SECONDS)
    try:
        await embedded.start()
    except EmbeddedTemporalError as error:
        raise StartupError(str(error), EXIT_RUNTIME) from None
    stack.push_async_callback(embedded.stop)
    reused = " (reused the server already running)" if embedded.adopted else ""
    announce(f"Embedded Temporal server at {embedded.address}{reused}")
    return embedded.address, embedded.ui_url, embedded


def announce(line: str, stream: TextIO | None = None) -> None:
    logs.announce(line, stream)


def require_data_dir(settings: Settings) -> None:
    try:
        prepare_data_dir(settings.data_dir)
    except DataDirProblem as error:
        raise StartupError(str(error)) from None


async def start_codec(settings: Settings, stack: AsyncExitStack, web_ui: str | None) -> None:
    """Serve the codec endpoint for the Web UI when payloads are encrypted."""
    key = settings.payload_key_bytes
    if key is None:
        return
    # The browser names the UI's origin as the person typed it: loopback either way.
    origins = {web_ui} if web_ui else set()
    for origin in list(origins):
        origins.add(origin.replace("//127.0.0.1:", "//localhost:"))
        origins.add(origin.replace("//localhost:", "//127.0.0.1:"))
    try:
        server = await start_codec_server(
            EncryptionCodec(key),
            host=settings.codec_ip,
            port=settings.codec_port,
            namespace=settings.temporal_namespace,
            allowed_origins=origins,
        )
    except OSError as error:
        raise StartupError(
            f"cannot serve the codec endpoint on {settings.codec_ip}:{settings.codec_port}: "
            f"{error.strerror}; set SHIPCORD_CODEC_PORT to a free port"
        ) from None
    stack.push_async_callback(server.stop)
    announce(f"Codec endpoint for the Web UI: {settings.codec_url}")


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


async def run_service(settings: Settings, *, with_bot: bool, with_worker: bool) -> int:
    prepare(settings)
    try:
        return await serve(settings, with_bot=with_bot, with_worker=with_worker)
    except StartupError as error:
        report(str(error))
        return error.exit_code
    except asyncio.CancelledError:
        # Nothing of shipcord's cancels this task (signals set an event): the Temporal SDK
        # does, when a worker fails fatally, even while it is being shut down (as when
        # the server is gone for good). Exit with one line, not a traceback.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        report("the Temporal worker failed: Temporal is unreachable")
        return EXIT_RUNTIME


async def serve(settings: Settings, *, with_bot: bool, with_worker: bool) -> int:
    if not settings.temporal_enabled:
        raise StartupError(
            "TEMPORAL_ENABLED is false, but every shipcord deployment is a Temporal "
            "workflow: set it to true (or remove it)"
        )
    token = require_token(settings) if with_bot else None
    require_targets(settings)
    require_data_dir(settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with AsyncExitStack() as stack:
        if settings.metrics_port is not None:
            try:
                metrics = start_metrics_server(settings.metrics_port, settings.metrics_address)
            except OSError as error:
                raise StartupError(
                    f"cannot serve metrics on {settings.metrics_address}:"
                    f"{settings.metrics_port}: {error.strerror}; "
                    "set SHIPCORD_METRICS_PORT to a free port"
                ) from None
            stack.callback(metrics.stop)
        address, web_ui, embedded = await start_temporal(settings, stack)
        await start_codec(settings, stack, web_ui)
        try:
            client = await connect_temporal(settings, address)
        except MetricsPortInUse as error:
            raise StartupError(str(error)) from None
        except TemporalUnavailable as error:
            raise StartupError(str(error), EXIT_RUNTIME) from None
        storage = await Storage.open(settings.database_path)
        stack.push_async_callback(storage.close)
        if with_worker:
            await stack.enter_async_context(
                engine_worker(
                    client,
                    task_queue=settings.temporal_task_queue,
                    storage=storage,
                    targets_file=settings.targets_file,
                    data_dir=settings.data_dir,
                    discord_api_base=settings.discord_api_base,
                    supervision=SupervisionSettings(interval_seconds=settings.reconcile_interval),
                    docker_network=settings.docker_network,
                    host=settings.host,
                    default_host=settings.resolved_default_host,
                    host_start_timeout=settings.host_start_timeout,
                )
            )
            announce(
                f"Worker running: address {address}, namespace {settings.temporal_namespace}, "
                f"task queue {settings.temporal_task_queue}, host {settings.host}"
            )
        if web_ui:
            announce(f"Temporal Web UI: {web_ui}")
        bot_task: asyncio.Task[None] | None = None
        if with_bot and token is not None:
            bot_task = await start_bot(
                front_end_config(settings),
                settings,
                client,
                storage,
                token,
                stack,
                with_worker=with_worker,
            )
            announce("Discord bot connecting")
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(stop.wait())}
        if bot_task is not None:
            waiters.add(bot_task)  # type: ignore[arg-type]
        supervisor: asyncio.Task[None] | None = None
        if embedded is not None:
            supervisor = asyncio.create_task(
                embedded.supervise(on_restart=embedded_temporal_restarts_total.inc),
                name="embedded-temporal-supervisor",
            )
            waiters.add(supervisor)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        # The supervisor goes first: it must not restart the server that shutdown stops.
        for waiter in waiters - done:
            waiter.cancel()
        if supervisor is not None and supervisor in done:
            return supervisor_outcome(supervisor)
        if bot_task is not None and bot_task in done:
            return bot_outcome(bot_task)
        announce("Shutting down")
    announce("Stopped")
    return EXIT_OK


def supervisor_outcome(task: asyncio.Task[None]) -> int:
    error = task.exception()
    log.error("embedded_temporal_lost", error=str(error))
    report(f"the embedded Temporal server cannot be restarted: {error}")
    return EXIT_RUNTIME


async def start_bot(
    config: FrontEndConfig,
    settings: Settings,
    client: Client,
    storage: Storage,
    token: str,
    stack: AsyncExitStack,
    *,
    with_worker: bool,
) -> asyncio.Task[None]:
    deployments = DeploymentClient(client, settings.temporal_task_queue)
    targets = TargetRegistry(settings.targets_file)
    hosts = HostDirectory(
        client,
        settings.temporal_task_queue,
        names=known_hosts(targets, settings.resolved_default_host),
        heartbeat_timeout=settings.host_heartbeat_timeout,
        default_host=settings.resolved_default_host,
    )
    bot = ShipcordBot(
        config=config,
        service=DeploymentService(deployments, storage, hosts=hosts),
        storage=storage,
        meter=PrometheusMeter(),
        releases=HostReleases(
            storage,
            ReleaseLogs(storage),
            # Releases of this process's own host are in its database; others are asked.
            local_host=settings.host if with_worker else None,
            default_host=settings.resolved_default_host,
            client=client,
            task_queue=settings.temporal_task_queue,
            encrypted=settings.payload_key is not None,
        ),
    )
    stack.push_async_callback(bot.close)
    # Hosts that go or come back become incidents, which the bot tells their owners.
    watch = HostWatch(
        directory=hosts,
        storage=storage,
        targets=targets,
        interval=settings.host_watch_interval,
    )
    watch.start()
    stack.push_async_callback(watch.stop)
    task = asyncio.create_task(bot.start(token), name="discord-bot")
    return task


def bot_outcome(task: asyncio.Task[None]) -> int:
    error = task.exception()
    if error is None:
        announce("The Discord connection closed")
        return EXIT_RUNTIME
    if isinstance(error, discord.LoginFailure):
        report("Discord rejected DISCORD_TOKEN (401): check the token")
        return EXIT_CONFIG
    if isinstance(error, discord.PrivilegedIntentsRequired):
        report("the bot asks for an intent not enabled in the portal")
        return EXIT_CONFIG
    log.error("discord_bot_stopped", error=repr(error))
    report(f"the Discord bot stopped: {error}")
    return EXIT_RUNTIME
