"""The echo bot: answers `/echo text`, and serves GET /healthz on $PORT.

Its token comes from DISCORD_TOKEN; DISCORD_API_BASE points it at any Discord-compatible
API (the gateway address is asked of that API). /healthz answers 200 once the bot is
connected to the gateway, 503 before.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import discord
import yarl
from aiohttp import web
from discord import app_commands


class EchoBot(discord.Client):
    def __init__(self, release: str) -> None:
        super().__init__(intents=discord.Intents.default())
        self.release = release
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="echo", description="Repeat what you say")
        @app_commands.describe(text="What the bot should say back")
        async def echo(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.send_message(f"{text} (echo bot {self.release})")


def use_api_base(api_base: str | None) -> None:
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")


async def discover_gateway(bot: EchoBot) -> None:
    _, url, _ = await bot.http.get_bot_gateway()
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url.rstrip("/") + "/")


async def serve_health(bot: EchoBot, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        ready = bot.is_ready() and not bot.is_closed()
        return web.json_response(
            {"ready": ready, "release": bot.release}, status=200 if ready else 503
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def main() -> int:
    parser = argparse.ArgumentParser(prog="echo_bot")
    parser.add_argument("--release", default="dev")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = os.environ.get("DISCORD_TOKEN")
    if not token:
        print("echo bot: DISCORD_TOKEN is not set", file=sys.stderr)
        return 2
    use_api_base(os.environ.get("DISCORD_API_BASE"))
    bot = EchoBot(args.release)
    runner = await serve_health(bot, int(os.environ.get("PORT", "8080")))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with bot:
            await bot.login(token)
            await discover_gateway(bot)
            connection = asyncio.create_task(bot.connect())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({connection, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if connection.done():
                connection.result()
            logging.info("echo bot %s stopping", args.release)
    except discord.LoginFailure:
        print("echo bot: Discord rejected the token", file=sys.stderr)
        return 3
    finally:
        await runner.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
