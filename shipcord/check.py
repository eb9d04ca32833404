"""`shipcord check` and `shipcord sync-commands`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlencode

import aiohttp
from temporalio.client import Client
from temporalio.service import RPCError

from shipcord import logs
from shipcord.app import (
    StartupError,
    announce,
    front_end_config,
    prepare,
    report,
    require_token,
    start_temporal,
)
from shipcord.data_dir import DataDirProblem, prepare_data_dir
from shipcord.exits import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME
from shipcord.settings import Settings
from shipcord.temporal_client import TemporalUnavailable, connect_temporal
from workflows.discord_rest import DiscordApiError, DiscordRest, TokenRejected
from workflows.file_access import token_file_problem
from workflows.host_directory import HostDirectory
from workflows.models import is_snowflake
from workflows.runtimes import DockerRuntime, PermanentRuntimeError, RuntimeError_
from workflows.runtimes.process import run_as
from workflows.targets import Target, TargetsError, TargetsFile, load_targets

ROLE_BY_ID = (
    "a name can be claimed by anyone who may create or rename roles in a server, and with it "
    "what the role allows; give the role's id instead (with Developer Mode on in Discord: "
    "Server Settings > Roles, right-click the role, Copy Role ID)"
)

# View Channel, Send Messages, Embed Links, Read Message History, Send Messages in Threads.
INVITE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16) | (1 << 38)


def invite_url(application_id: str) -> str:
    query = urlencode(
        {
            "client_id": application_id,
            "scope": "bot applications.commands",
            "permissions": str(INVITE_PERMISSIONS),
        }
    )
    return f"https://discord.com/oauth2/authorize?{query}"


@dataclass
class Findings:
    """Problems found so far, each with the exit status it calls for."""

    codes: list[int] = field(default_factory=list)

    def problem(self, message: str, code: int = EXIT_CONFIG) -> None:
        report(message)
        self.codes.append(code)

    @property
    def exit_code(self) -> int:
        if not self.codes:
            return EXIT_OK
        return EXIT_CONFIG if EXIT_CONFIG in self.codes else EXIT_RUNTIME


ROLES = ("run", "bot", "worker")


@dataclass(frozen=True)
class Role:
    """What `shipcord check` checks: what the role it will run as needs."""

    name: str = "run"
    # The worker's host (run and worker); the front end runs no worker.
    host: str | None = None

    @property
    def front_end(self) -> bool:
        return self.name in ("run", "bot")

    @property
    def worker(self) -> bool:
        return self.name in ("run", "worker")

    def runs_here(self, target: Target, default_host: str) -> bool:
        """Whether this role's worker runs `target` (`run` checks every target, as one
        machine runs them all)."""
        if self.name == "run":
            return True
        return self.name == "worker" and (target.host or default_host) == self.host


async def run_check(
    settings: Settings, *, start_embedded: bool = True, role: Role | None = None
) -> int:
    """Check everything the role needs (`run`: everything); one line per problem."""
    role = role or Role("run", settings.host)
    prepare(settings)
    findings = Findings()
    announce(f"settings: ok (role {role.name}" + (f", host {role.host})" if role.worker else ")"))
    if role.front_end and settings.admin_role is not None:
        warn_role_names("SHIPCORD_ADMIN_ROLE", [settings.admin_role])
    token: str | None = None
    if role.front_end:
        try:
            token = require_token(settings)
        except StartupError as error:
            findings.problem(str(error), error.exit_code)
    data_dir_ok = check_data_dir(settings, findings)
    targets = await check_targets(settings, findings, role)
    if data_dir_ok or not settings.embedded_temporal:
        await check_temporal(settings, findings, start_embedded=start_embedded, targets=targets)
    if token is not None:
        await check_discord(settings, token, findings)
    if findings.codes:
        count = len(findings.codes)
        report(f"{count} problem{'s' if count > 1 else ''} found")
    return findings.exit_code


def check_data_dir(settings: Settings, findings: Findings) -> bool:
    try:
        prepare_data_dir(settings.data_dir)
    except DataDirProblem as error:
        findings.problem(str(error))
        return False
    announce(f"data folder {settings.data_dir}: writable by uid {os.geteuid()}")
    return True


async def check_targets(settings: Settings, findings: Findings, role: Role) -> TargetsFile | None:
    """The targets file; then, for the front end, its servers and roles, and for a worker
    each target it runs (command, manifest, token, Docker)."""
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError as error:
        findings.problem(str(error))
        return None
    announce(f"targets file {settings.targets_file}: {len(targets.bots)} bot(s)")
    if role.front_end:
        check_servers(settings, targets, findings)
        for target in targets.bots.values():
            warn_target_roles(target)
    if not role.worker:
        return targets
    default_host = settings.resolved_default_host
    mine = [t for t in targets.bots.values() if role.runs_here(t, default_host)]
    if role.name == "worker":
        announce(f"  host {role.host} runs {len(mine)} of them")
    docker_users = []
    for target in mine:
        before = len(findings.codes)
        check_target(target, findings)
        if target.runtime == "docker":
            docker_users.append(target.name)
        if len(findings.codes) == before:
            announce(f"  {target.name}: ok")
    if docker_users:
        await check_docker(settings, docker_users, findings)
    return targets


def check_servers(settings: Settings, targets: TargetsFile, findings: Findings) -> None:
    """shipcord serves no server at all until one is configured: say what to set."""
    servers = set(map(str, settings.configured_guild_ids))
    for target in targets.bots.values():
        servers.update(target.guilds)
    if not servers:
        findings.problem(
            "no Discord server is configured, so shipcord would refuse every command: set "
            "SHIPCORD_GUILD_IDS to your server's id (in Discord, with Developer Mode on, "
            "right-click the server and Copy Server ID); shipcord's answer in that server "
            "names the id too"
        )
        return
    announce(f"servers: {', '.join(sorted(servers))}")


def warn_role_names(where: str, roles: Iterable[str]) -> None:
    for role in roles:
        if not is_snowflake(role):
            logs.warn(f"warning: {where}: the role {role[:100]!r} is given by name: {ROLE_BY_ID}")


def warn_target_roles(target: Target) -> None:
    where = f"bots.{target.name}"
    warn_role_names(f"{where}.deploy_roles", target.deploy_roles)
    if target.approval is not None:
        warn_role_names(f"{where}.approval.role", [target.approval.role])


def check_target(target: Target, findings: Findings) -> None:
    """What a worker needs to run `target`: its manifest, token, command and user."""
    where = f"bots.{target.name}"
    try:
        target.load_command_manifest()
    except TargetsError as error:
        findings.problem(str(error))
    if target.read_token() is None:
        unreadable = token_file_problem(target.token_file) if target.token_file else None
        findings.problem(f"{where}: {unreadable or f'no token in {target.token_source}'}")
    if target.runtime == "process":
        program = target.render_command(version="0", port=0)[0]
        beside = target.working_directory / program
        if shutil.which(program) is None and not (os.sep in program and beside.exists()):
            findings.problem(f"{where}.command: {program!r} is not found (PATH or a path)")
        try:
            run_as(target.user)
        except PermanentRuntimeError as error:
            findings.problem(f"{where}.user: {error}")


async def check_docker(settings: Settings, users: list[str], findings: Findings) -> None:
    runtime = DockerRuntime(network=settings.docker_network)
    names = ", ".join(users)
    try:
        await runtime.check_engine()
    except PermanentRuntimeError as error:
        findings.problem(f"docker (for {names}): {error}")
    except RuntimeError_ as error:
        findings.problem(f"docker (for {names}): {error}", EXIT_RUNTIME)
    else:
        announce(f"Docker engine at {runtime.socket_path}: ok (for {names})")
    finally:
        await runtime.close()


async def check_temporal(
    settings: Settings,
    findings: Findings,
    *,
    start_embedded: bool,
    targets: TargetsFile | None = None,
) -> None:
    if settings.embedded_temporal and not start_embedded:
        announce("Temporal: embedded server (not started: --no-start)")
        return
    try:
        async with AsyncExitStack() as stack:
            address, _, embedded = await start_temporal(settings, stack)
            try:
                client = await connect_temporal(settings, address, retry_for=10.0)
            except TemporalUnavailable as error:
                raise StartupError(str(error), EXIT_RUNTIME) from None
            announce(f"Temporal at {address}, namespace {settings.temporal_namespace}: ok")
            # A server that check started itself has no workers to list.
            if targets is not None and (embedded is None or embedded.adopted):
                await list_hosts(settings, client, targets)
    except StartupError as error:
        findings.problem(str(error), error.exit_code)


async def list_hosts(settings: Settings, client: Client, targets: TargetsFile) -> None:
    """The hosts with a worker now, and each target whose host has none (not a problem of
    the configuration: a worker may simply not have started yet)."""
    default_host = settings.resolved_default_host
    directory = HostDirectory(
        client,
        settings.temporal_task_queue,
        names=lambda: {t.host or default_host for t in targets.bots.values()},
        heartbeat_timeout=settings.host_heartbeat_timeout,
        default_host=default_host,
    )
    try:
        hosts = await directory.describe()
    except RPCError as error:
        logs.warn(f"warning: cannot list the hosts' workers: {error.message}")
        return
    up = sorted(host.name for host in hosts if host.alive)
    announce(f"hosts with a running worker: {', '.join(up) if up else 'none'}")
    for target in targets.bots.values():
        host = target.host or default_host
        if host not in up:
            announce(f"  {target.name}: host {host} has no running worker")


async def check_discord(settings: Settings, token: str, findings: Findings) -> None:
    async with aiohttp.ClientSession() as http:
        discord_api = DiscordRest(http, settings.discord_api_base)
        try:
            await discord_api.current_user(token)
            application = await discord_api.current_application(token)
        except TokenRejected:
            findings.problem("Discord rejected DISCORD_TOKEN (401): check the token")
            return
        except DiscordApiError as error:
            findings.problem(
                f"cannot check DISCORD_TOKEN at {settings.discord_api_base}: {error}",
                EXIT_RUNTIME,
            )
            return
    application_id = str(application["id"])
    announce(f"Discord token: ok (application {application_id})")
    announce(f"Invite the bot: {invite_url(application_id)}")


async def sync_commands(settings: Settings) -> int:
    """Register shipcord's slash commands globally; they reach every server within an hour."""
    prepare(settings)
    try:
        token = require_token(settings)
    except StartupError as error:
        report(str(error))
        return error.exit_code
    import discord

    from bot.discord_client import ShipcordBot
    from storage import Storage
    from workflows.deployment_client import DeploymentClient
    from workflows.deployment_service import DeploymentService

    async with await Storage.open(settings.database_path) as storage:
        # Registering commands needs neither Temporal nor the progress board.
        unused_temporal = cast(Client, None)
        deployments = DeploymentClient(unused_temporal, settings.temporal_task_queue)
        bot = ShipcordBot(
            config=front_end_config(settings),
            service=DeploymentService(deployments, storage),
            storage=storage,
            run_board=False,
        )
        try:
            await bot.login(token)
            synced = await bot.sync_global()
        except discord.LoginFailure:
            report("Discord rejected DISCORD_TOKEN (401)")
            return EXIT_CONFIG
        finally:
            await bot.close()
    announce(f"Registered {len(synced)} commands globally")
    return EXIT_OK
