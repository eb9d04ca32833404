"""Structured logging for shipcord: one structlog pipeline for our logs and the libraries'."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog

from workflows.redaction import REDACTED, redact, redact_value, register_secret

__all__ = [
    "REDACTED",
    "announce",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "redact_text",
    "register_secret",
    "report_problem",
]

_HANDLER_NAME = "shipcord"
# The one redactor (workflows.redaction), under the name this module always exported.
redact_text = redact


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: redact secrets in every string value of the event dict."""
    for key, value in event_dict.items():
        if key != "exc_info":  # exception objects are rendered (and redacted) later
            event_dict[key] = redact_value(value)
    return event_dict


class _RedactingRenderer:
    """Wraps the final renderer and redacts the rendered line, tracebacks included."""

    def __init__(self, renderer: Any) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        rendered = self._renderer(logger, method, event_dict)
        return redact(rendered if isinstance(rendered, str) else rendered.decode())


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
    logging.captureWarnings(True)
    global _json_output
    _json_output = not console


_json_output = False


def announce(line: str, stream: TextIO | None = None) -> None:
    """Tell the person running shipcord something: a plain line, or in JSON mode a log event
    (so that JSON output never has a plain line in it)."""
    if _json_output:
        structlog.stdlib.get_logger("shipcord").info(redact(line))
        return
    print(redact(line), file=stream or sys.stdout, flush=True)


def warn(line: str) -> None:
    """Something that works but should change: a plain line on stderr, or in JSON mode a
    warning event. It changes no exit status."""
    if _json_output:
        structlog.stdlib.get_logger("shipcord").warning(redact(line))
        return
    print(redact(line), file=sys.stderr, flush=True)


def report_problem(line: str) -> None:
    """A problem that stops shipcord: a plain line on stderr, or in JSON mode an error event."""
    if _json_output:
        structlog.stdlib.get_logger("shipcord").error(redact(line))
        return
    print(redact(line), file=sys.stderr, flush=True)


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
