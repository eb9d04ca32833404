"""`shipcord check` and `shipcord sync-commands`."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from typing import cast
from urllib.parse import urlencode

import aiohttp
from temporalio.client import Client

from shipcord.app import (
    StartupError,
    announce,
    front_end_config,
    prepare,
    require_targets,
    require_token,
    start_temporal,
)
from shipcord.exits import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME
from shipcord.settings import Settings
from shipcord.temporal_client import TemporalUnavailable, connect_temporal
from workflows.discord_rest import DiscordApiError, DiscordRest, TokenRejected
from workflows.targets import TargetsFile, load_targets

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


def require_servers(settings: Settings, targets: TargetsFile) -> None:
    """shipcord serves no server at all until one is configured: say what to set."""
    servers = set(map(str, settings.configured_guild_ids))
    for target in targets.bots.values():
        servers.update(target.guilds)
    if not servers:
        raise StartupError(
            "no Discord server is configured, so shipcord would refuse every command: set "
            "SHIPCORD_GUILD_IDS to your server's id (in Discord, with Developer Mode on, "
            "right-click the server and Copy Server ID); shipcord's answer in that server "
            "names the id too"
        )
    announce(f"servers: {', '.join(sorted(servers))}")


async def run_check(settings: Settings, *, start_embedded: bool = True) -> int:
    """Check everything shipcord needs, in order; stop at the first problem."""
    prepare(settings)
    try:
        announce("settings: ok")
        token = require_token(settings)
        require_targets(settings)
        targets = load_targets(settings.targets_file)
        announce(f"targets file {settings.targets_file}: {len(targets.bots)} bot(s)")
        require_servers(settings, targets)
        for target in targets.bots.values():
            if target.read_token() is None:
                announce(f"  warning: no token for {target.name}: {target.token_source} is empty")
        async with AsyncExitStack() as stack:
            if settings.embedded_temporal and not start_embedded:
                announce("Temporal: embedded server (not started: --no-start)")
            else:
                address, _ = await start_temporal(settings, stack)
                try:
                    await connect_temporal(settings, address, retry_for=10.0)
                except TemporalUnavailable as error:
                    raise StartupError(str(error), EXIT_RUNTIME) from None
                announce(f"Temporal at {address}, namespace {settings.temporal_namespace}: ok")
        application_id = await check_discord_token(settings, token)
        announce(f"Discord token: ok (application {application_id})")
        announce(f"Invite the bot: {invite_url(application_id)}")
    except StartupError as error:
        print(f"shipcord: {error}", file=sys.stderr)
        return error.exit_code
    return EXIT_OK


async def check_discord_token(settings: Settings, token: str) -> str:
    async with aiohttp.ClientSession() as http:
        discord_api = DiscordRest(http, settings.discord_api_base)
        try:
            await discord_api.current_user(token)
            application = await discord_api.current_application(token)
        except TokenRejected:
            raise StartupError("Discord rejected DISCORD_TOKEN (401): check the token") from None
        except DiscordApiError as error:
            raise StartupError(
                f"cannot check DISCORD_TOKEN at {settings.discord_api_base}: {error}",
                EXIT_RUNTIME,
            ) from None
    return str(application["id"])


async def sync_commands(settings: Settings) -> int:
    """Register shipcord's slash commands globally; they reach every server within an hour."""
    prepare(settings)
    try:
        token = require_token(settings)
    except StartupError as error:
        print(f"shipcord: {error}", file=sys.stderr)
        return error.exit_code
    import discord

    from bot.client import ShipcordBot
    from storage import Storage
    from workflows.client import DeploymentClient, DeploymentService

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
            print("shipcord: Discord rejected DISCORD_TOKEN (401)", file=sys.stderr)
            return EXIT_CONFIG
        finally:
            await bot.close()
    announce(f"Registered {len(synced)} commands globally")
    return EXIT_OK
