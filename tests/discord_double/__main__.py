"""``python -m tests.discord_double --port 0 --seed seed.json``: run the double on its own.

Prints one JSON line (api_base, gateway_url, control_url, base_url, port, pid, ids) and
serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from .seed import apply_seed, load_seed
from .server import DiscordDouble


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.discord_double")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", help="JSON seed file (users, bots, guilds)")
    parser.add_argument("--edit-limit", type=int, default=5)
    parser.add_argument("--edit-window", type=float, default=5.0)
    parser.add_argument("--send-limit", type=int, default=5)
    parser.add_argument("--send-window", type=float, default=5.0)
    parser.add_argument("--webhook-limit", type=int, default=5)
    parser.add_argument("--webhook-window", type=float, default=2.0)
    parser.add_argument("--interaction-token-lifetime", type=float, default=900.0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--interaction-deadline", type=float, default=None)
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="do not check requests against Discord's OpenAPI spec",
    )
    parser.add_argument(
        "--no-ratelimit-headers",
        action="store_true",
        help="omit X-RateLimit-* headers so clients cannot pace themselves (more 429s)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    double = DiscordDouble(
        host=args.host,
        port=args.port,
        edit_limit=args.edit_limit,
        edit_window=args.edit_window,
        send_limit=args.send_limit,
        send_window=args.send_window,
        webhook_limit=args.webhook_limit,
        webhook_window=args.webhook_window,
        interaction_token_lifetime=args.interaction_token_lifetime,
        advertise_ratelimits=not args.no_ratelimit_headers,
        interaction_deadline=args.interaction_deadline,
        latency=args.latency,
        validate=not args.no_validate,
    )
    ids: dict[str, Any] = {}
    if args.seed:
        ids = apply_seed(double, load_seed(args.seed))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with double:
        line = {
            "api_base": double.api_base,
            "gateway_url": str(double.gateway_url),
            "control_url": double.control_url,
            "base_url": double.base_url,
            "port": double.port,
            "pid": os.getpid(),
            "ids": ids,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await stop.wait()
        # The parent reads violations over /_control/violations; here they are only told.
        report = double.violation_report()
        if report is not None:
            sys.stderr.write(report + "\n")
            double.take_violations()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
