"""Structured logging for shipcord: one structlog pipeline for our logs and the libraries'.

`configure_logging()` installs a single handler on the root logger whose
`structlog.stdlib.ProcessorFormatter` renders both structlog events and plain
`logging` records (temporalio, discord, aiohttp, asyncio), so every line has the same
shape: ISO timestamp, level, logger, bound context ids, and secrets redacted.

Redaction happens twice on purpose: on the event dict (so structured values are clean)
and on the rendered line (so a secret hidden in a traceback or a library's message is
caught too).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from pydantic import SecretStr

__all__ = [
    "REDACTED",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "redact_text",
    "register_secret",
]

REDACTED = "***"
# Shorter "secrets" would redact ordinary words and digits everywhere.
_MIN_SECRET_LENGTH = 4
# A Discord bot token: base64 user id, timestamp, HMAC.
_DISCORD_TOKEN = re.compile(r"[\w-]{24,}\.[\w-]{6}\.[\w-]{27,}")
# `Authorization: Bot <token>` (or Bearer), whatever the token looks like once it is long.
_AUTH_VALUE = re.compile(r"\b(Bot|Bearer)(\s+)[\w.~+/=-]{20,}")
_HANDLER_NAME = "shipcord"

_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | SecretStr | None) -> None:
    """Redact `value` from every log line from now on. None and very short values are ignored."""
    global _secret_pattern
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value or len(value) < _MIN_SECRET_LENGTH or value in _secrets:
        return
    _secrets.add(value)
    # Longest first, so a secret that contains another is replaced whole.
    alternatives = sorted(_secrets, key=len, reverse=True)
    _secret_pattern = re.compile("|".join(re.escape(secret) for secret in alternatives))


def redact_text(text: str) -> str:
    """Replace registered secrets and anything shaped like a Discord token with `***`."""
    if _secret_pattern is not None:
        text = _secret_pattern.sub(REDACTED, text)
    text = _DISCORD_TOKEN.sub(REDACTED, text)
    return _AUTH_VALUE.sub(rf"\1\2{REDACTED}", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_redact_value(item) for item in value)
    return value


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: redact secrets in every string value of the event dict."""
    for key, value in event_dict.items():
        if key != "exc_info":  # exception objects are rendered (and redacted) later
            event_dict[key] = _redact_value(value)
    return event_dict


class _RedactingRenderer:
    """Wraps the final renderer and redacts the rendered line, tracebacks included."""

    def __init__(self, renderer: Any) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        rendered = self._renderer(logger, method, event_dict)
        return redact_text(rendered if isinstance(rendered, str) else rendered.decode())


def _wants_console(fmt: str, stream: TextIO) -> bool:
    if fmt == "console":
        return True
    if fmt == "json":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(
    level: str = "INFO",
    fmt: Literal["auto", "console", "json"] | str = "auto",
    stream: TextIO | None = None,
) -> None:
    """Route structlog and standard-library logging through one pipeline to `stream`.

    `fmt` is `auto` (console renderer on a TTY, JSON lines otherwise), `console` or
    `json`. Calling it again replaces the previous configuration (tests rely on that).
    """
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"unknown log format {fmt!r}: expected auto, console or json")
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")
    output = stream if stream is not None else sys.stderr
    console = _wants_console(fmt, output)

    # Applied to both structlog events and foreign (stdlib) records.
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: reconfiguring (tests, CLI flags) must affect existing loggers.
        cache_logger_on_first_use=False,
    )

    renderer: Any
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=_supports_color(output))
        final: list[Any] = [redact_event, _RedactingRenderer(renderer)]
    else:
        renderer = structlog.processors.JSONRenderer()
        final = [
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            redact_event,
            _RedactingRenderer(renderer),
        ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )

    handler = logging.StreamHandler(output)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    # temporalio, discord, aiohttp and asyncio log to child loggers of the root, so this one
    # handler renders them too. (discord.py's `Client.run()` adds a handler of its own by
    # default: start the client with `log_handler=None` or `Client.start()`.)
    root.setLevel(numeric_level)


def _supports_color(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger (stdlib-backed, so levels and handlers are shared)."""
    return structlog.stdlib.get_logger(name, **initial)


def bind_context(**ids: Any) -> None:
    """Attach ids (workflow_id, guild_id, user_id, ...) to every log line of this task.

    None values are skipped so callers can pass optional ids unconditionally.
    """
    structlog.contextvars.bind_contextvars(
        **{key: value for key, value in ids.items() if value is not None}
    )


def clear_context() -> None:
    """Forget every id bound with `bind_context` in this task."""
    structlog.contextvars.clear_contextvars()


@contextmanager
def bound_context(**ids: Any) -> Iterator[None]:
    """`bind_context` for the duration of a `with` block, restoring the previous ids after."""
    present = {key: value for key, value in ids.items() if value is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield
