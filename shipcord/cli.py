"""The `shipcord` command: run, worker, bot, check, sync-commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from shipcord.exits import EXIT_CONFIG
from shipcord.settings import Settings, SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipcord",
        description="Deploy and control bots from Discord; every deployment is a Temporal "
        "workflow. Settings come from the environment and .env (see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="the Discord bot and the worker in one process (default)")
    commands.add_parser("worker", help="only the Temporal worker (run many to scale out)")
    commands.add_parser("bot", help="only the Discord front end")
    check = commands.add_parser(
        "check", help="validate settings, targets file, Temporal and the Discord token"
    )
    check.add_argument(
        "--no-start", action="store_true", help="do not start the embedded Temporal server"
    )
    commands.add_parser(
        "sync-commands", help="register the slash commands globally (in every server)"
    )
    return parser


def fail(message: str, code: int) -> int:
    print(f"shipcord: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except SettingsError as error:
        sys.exit(fail(str(error), EXIT_CONFIG))
    code = asyncio.run(dispatch(command, settings, args))
    exit_now(code)


def exit_now(code: int) -> None:
    """Exit without the interpreter's finalisation: the Temporal SDK's native threads may
    still forward a log line into Python, and that aborts a finalising interpreter."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def dispatch(command: str, settings: Settings, args: argparse.Namespace) -> int:
    # Imported here so that `shipcord --help` and settings errors stay fast.
    from shipcord.app import run_service
    from shipcord.check import run_check, sync_commands

    if command == "check":
        return await run_check(settings, start_embedded=not args.no_start)
    if command == "sync-commands":
        return await sync_commands(settings)
    return await run_service(
        settings, with_bot=command in ("run", "bot"), with_worker=command in ("run", "worker")
    )
