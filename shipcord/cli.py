"""The `shipcord` command: run, worker, bot, check, sync-commands."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from shipcord.environment import (
    HANDOVER_VARIABLE,
    HandOverError,
    hand_over_secrets,
    receive_secrets,
)
from shipcord.exits import EXIT_CONFIG
from shipcord.logs import configure_logging, report_problem
from shipcord.settings import Settings, SettingsError, load_settings
from workflows.targets import TargetsError, load_targets

LONG_RUNNING = frozenset({"run", "worker", "bot"})


def version() -> str:
    try:
        return importlib.metadata.version("shipcord")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipcord",
        description="Deploy and control bots from Discord; every deployment is a Temporal "
        "workflow. Settings come from the environment and .env (see .env.example).",
    )
    parser.add_argument("--version", action="version", version=f"shipcord {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="the Discord bot and the worker in one process (default)")
    worker = commands.add_parser(
        "worker", help="only the Temporal worker (run many to scale out, on many hosts)"
    )
    for parser_with_host in (run, worker):
        parser_with_host.add_argument(
            "--host",
            metavar="NAME",
            help="the host this worker runs on (overrides SHIPCORD_HOST; default: local)",
        )
    commands.add_parser("bot", help="only the Discord front end")
    check = commands.add_parser(
        "check", help="validate settings, targets file, Temporal and the Discord token"
    )
    check.add_argument(
        "--no-start", action="store_true", help="do not start the embedded Temporal server"
    )
    check.add_argument(
        "--role",
        choices=("run", "bot", "worker"),
        default="run",
        help="check what this role needs: run (everything, the default), bot (the Discord "
        "front end: no bot tokens) or worker (the targets of its host: no Discord token)",
    )
    check.add_argument(
        "--host",
        metavar="NAME",
        help="with --role worker or run: the worker's host (overrides SHIPCORD_HOST)",
    )
    commands.add_parser(
        "sync-commands", help="register the slash commands globally (in every server)"
    )
    return parser


def fail(message: str, code: int) -> int:
    # Settings are what failed, so their log format is read raw: JSON mode stays JSON.
    if os.environ.get("SHIPCORD_LOG_FORMAT", "").strip().lower() == "json":
        configure_logging("INFO", "json")
    report_problem(f"shipcord: {message}")
    return code


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    handed_over = HANDOVER_VARIABLE in os.environ
    received = receive_secrets()
    overrides = setting_overrides(received)
    if getattr(args, "host", None):
        overrides["host"] = args.host
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        sys.exit(fail(str(error), EXIT_CONFIG))
    if command in LONG_RUNNING and not handed_over:
        try:
            hand_over_secrets(target_token_names(settings))  # starts again without them
        except HandOverError as error:
            sys.exit(fail(str(error), EXIT_CONFIG))
    code = asyncio.run(dispatch(command, settings, args))
    exit_now(code)


def setting_overrides(received: Mapping[str, str]) -> dict[str, Any]:
    """Handed-over secrets that are settings, by field name (they were variables before)."""
    fields = {
        str(field.validation_alias): name
        for name, field in Settings.model_fields.items()
        if field.validation_alias is not None
    }
    return {fields[name]: value for name, value in received.items() if name in fields}


def target_token_names(settings: Settings) -> list[str]:
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError:
        return []  # reported by the command itself, with the file's problem
    return [target.token_env for target in targets.bots.values() if target.token_env]


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
    from shipcord.check import Role, run_check, sync_commands

    if command == "check":
        role = Role(args.role, None if args.role == "bot" else settings.host)
        return await run_check(settings, start_embedded=not args.no_start, role=role)
    if command == "sync-commands":
        return await sync_commands(settings)
    return await run_service(
        settings, with_bot=command in ("run", "bot"), with_worker=command in ("run", "worker")
    )
