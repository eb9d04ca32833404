"""Logging: JSON lines with bound ids, redaction of secrets, stdlib records in the same pipeline."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from shipcord.logs import (
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    get_logger,
    redact_text,
    register_secret,
)

DISCORD_LIKE_TOKEN = "MTEyMzQ1Njc4OTAxMjM0NTY3OA.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Route logging into a StringIO; restore logging afterwards for other test modules."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    output = io.StringIO()
    configure_logging("INFO", "json", output)
    yield output
    clear_context()
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    structlog.reset_defaults()


def lines(output: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


def test_json_line_carries_bound_ids(stream: io.StringIO) -> None:
    bind_context(workflow_id="deploy-echo-1700000000000", guild_id=42, user_id=None)
    get_logger("shipcord.test").info("deployment started", bot="echo")
    clear_context()
    get_logger("shipcord.test").info("after clear")

    first, second = lines(stream)
    assert first["event"] == "deployment started"
    assert first["workflow_id"] == "deploy-echo-1700000000000"
    assert first["guild_id"] == 42
    assert "user_id" not in first  # None ids are not bound
    assert first["bot"] == "echo"
    assert first["level"] == "info"
    assert first["logger"] == "shipcord.test"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert "workflow_id" not in second


def test_bound_context_is_scoped(stream: io.StringIO) -> None:
    log = get_logger("shipcord.test")
    with bound_context(user_id="u-1"):
        log.info("inside")
    log.info("outside")
    inside, outside = lines(stream)
    assert inside["user_id"] == "u-1"
    assert "user_id" not in outside


def test_registered_secret_is_redacted_everywhere(stream: io.StringIO) -> None:
    secret = "registered-secret-value-1234"
    register_secret(SecretStr(secret))
    log = get_logger("shipcord.test")
    log.info(f"connecting with {secret}", headers={"x-api-key": secret}, items=[secret])
    try:
        raise RuntimeError(f"rejected {secret}")
    except RuntimeError:
        log.exception("failed")

    text = stream.getvalue()
    assert secret not in text
    message, failure = lines(stream)
    assert message["event"] == "connecting with ***"
    assert message["headers"] == {"x-api-key": "***"}
    assert message["items"] == ["***"]
    assert "RuntimeError: rejected ***" in failure["exception"]


def test_discord_token_shapes_are_redacted(stream: io.StringIO) -> None:
    log = get_logger("shipcord.test")
    log.info("token leaked", token=DISCORD_LIKE_TOKEN)
    log.info("header", authorization="Bot some-unregistered-token-value-xyz")
    assert DISCORD_LIKE_TOKEN not in stream.getvalue()
    leaked, header = lines(stream)
    assert leaked["token"] == "***"
    assert header["authorization"] == "Bot ***"


def test_redact_text_leaves_ordinary_text_alone() -> None:
    text = "Bot echo deployed version 1.4.0 in guild 123456789012345678"
    assert redact_text(text) == text


def test_stdlib_records_go_through_the_pipeline(stream: io.StringIO) -> None:
    bind_context(workflow_id="deploy-echo-1")
    logging.getLogger("temporalio.worker").warning(
        "Authorization: Bot %s failed for %s", DISCORD_LIKE_TOKEN, "echo"
    )
    logging.getLogger("discord.http").debug("below the level: dropped")
    (record,) = lines(stream)
    assert record["logger"] == "temporalio.worker"
    assert record["level"] == "warning"
    assert record["event"] == "Authorization: Bot *** failed for echo"
    assert record["workflow_id"] == "deploy-echo-1"


def test_console_format_and_auto_detection() -> None:
    terminal = FakeTerminal()
    configure_logging("DEBUG", "auto", terminal)
    try:
        get_logger("shipcord.test").debug("pretty", secret_value=DISCORD_LIKE_TOKEN)
        rendered = terminal.getvalue()
        assert "pretty" in rendered and not rendered.lstrip().startswith("{")
        assert DISCORD_LIKE_TOKEN not in rendered

        piped = io.StringIO()
        configure_logging("INFO", "auto", piped)
        get_logger("shipcord.test").info("piped")
        assert json.loads(piped.getvalue())["event"] == "piped"

        forced = io.StringIO()
        configure_logging("INFO", "console", forced)
        get_logger("shipcord.test").info("forced")
        assert "forced" in forced.getvalue() and not forced.getvalue().startswith("{")
    finally:
        configure_logging("INFO", "json", io.StringIO())


def test_reconfiguring_keeps_a_single_handler(stream: io.StringIO) -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    configure_logging("INFO", "json", stream)
    configure_logging("INFO", "json", stream)
    assert len(root.handlers) == before
    get_logger("shipcord.test").info("once")
    assert len(lines(stream)) == 1


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")
    with pytest.raises(ValueError, match="log level"):
        configure_logging("LOUD", "json")
