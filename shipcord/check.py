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


async def run_check(settings: Settings, *, start_embedded: bool = True) -> int:
    """Check everything the first deployment needs; one line per problem."""
    prepare(settings)
    findings = Findings()
    announce("settings: ok")
    if settings.admin_role is not None:
        warn_role_names("SHIPCORD_ADMIN_ROLE", [settings.admin_role])
    token: str | None = None
    try:
        token = require_token(settings)
    except StartupError as error:
        findings.problem(str(error), error.exit_code)
    data_dir_ok = check_data_dir(settings, findings)
    await check_targets(settings, findings)
    if data_dir_ok or not settings.embedded_temporal:
        await check_temporal(settings, findings, start_embedded=start_embedded)
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


async def check_targets(settings: Settings, findings: Findings) -> None:
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError as error:
        findings.problem(str(error))
        return
    announce(f"targets file {settings.targets_file}: {len(targets.bots)} bot(s)")
    check_servers(settings, targets, findings)
    docker_users = []
    for target in targets.bots.values():
        before = len(findings.codes)
        check_target(target, findings)
        if target.runtime == "docker":
            docker_users.append(target.name)
        if len(findings.codes) == before:
            announce(f"  {target.name}: ok")
    if docker_users:
        await check_docker(settings, docker_users, findings)


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


def check_target(target: Target, findings: Findings) -> None:
    where = f"bots.{target.name}"
    warn_role_names(f"{where}.deploy_roles", target.deploy_roles)
    if target.approval is not None:
        warn_role_names(f"{where}.approval.role", [target.approval.role])
    try:
        target.load_command_manifest()
    except TargetsError as error:
        findings.problem(str(error))
    if target.read_token() is None:
        findings.problem(f"{where}: no token in {target.token_source}")
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


async def check_temporal(settings: Settings, findings: Findings, *, start_embedded: bool) -> None:
    if settings.embedded_temporal and not start_embedded:
        announce("Temporal: embedded server (not started: --no-start)")
        return
    try:
        async with AsyncExitStack() as stack:
            address, _, _ = await start_temporal(settings, stack)
            try:
                await connect_temporal(settings, address, retry_for=10.0)
            except TemporalUnavailable as error:
                raise StartupError(str(error), EXIT_RUNTIME) from None
            announce(f"Temporal at {address}, namespace {settings.temporal_namespace}: ok")
    except StartupError as error:
        findings.problem(str(error), error.exit_code)


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
