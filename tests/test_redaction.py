"""The one redactor: registered secrets and secret-shaped strings, wherever they appear."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from workflows.redaction import REDACTED, redact, redact_value, register_secret

DISCORD_LIKE = "MTEyMzQ1Njc4OTAxMjM0NTY3OA.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789"


def test_a_registered_secret_is_redacted_anywhere_in_a_text() -> None:
    secret = "plain-secret-value-4f3e2d1c"
    register_secret(SecretStr(secret))
    assert redact(f"login refused for {secret}!") == "login refused for ***!"
    assert redact(f"x{secret}y") == "x***y"


def test_longer_secrets_win_over_the_secrets_they_contain() -> None:
    register_secret("shorter-secret-aa")
    register_secret("shorter-secret-aa-and-more")
    assert redact("shorter-secret-aa-and-more") == REDACTED


def test_short_and_empty_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret("")
    register_secret(None)
    assert redact("abc and nothing") == "abc and nothing"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {DISCORD_LIKE}", "token ***"),
        ("Authorization: Bot abcdefghijklmnopqrstuvwxyz", "Authorization: Bot ***"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9.payload", "Bearer ***"),
        (
            "POST http://127.0.0.1:1/api/v10/interactions/123456/itok.abc-DEF_1/callback",
            "POST http://127.0.0.1:1/api/v10/interactions/123456/***/callback",
        ),
        (
            "PATCH /webhooks/987654321/aW50ZXJhY3Rpb24.x/messages/@original",
            "PATCH /webhooks/987654321/***/messages/@original",
        ),
        ("{'type': 2, 'token': 'itok.anything-at-all'}", "{'type': 2, 'token': '***'}"),
        ('{"access_token": "abc", "id": 1}', '{"access_token": "***", "id": 1}'),
        ("ECHO_BOT_TOKEN=whatever PORT=8080", "ECHO_BOT_TOKEN=*** PORT=8080"),
        ("DISCORD_TOKEN=x123 db_password=hunter2", "DISCORD_TOKEN=*** db_password=***"),
        ("GET /x?api_key=k3y&page=2", "GET /x?api_key=***&page=2"),
    ],
)
def test_secret_shapes_are_redacted_without_registration(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Bot echo deployed version 1.4.0 in guild 123456789012345678",
        "Release 1 of echo is not running: the process exited with status 3 after 0.4 s",
        "token_env = ECHO_BOT_TOKEN; token_file=/run/secrets/echo",
        "the variable ECHO_BOT_TOKEN (environment or .env) is not set",
        "PORT=8080 DISCORD_API_BASE=https://discord.com/api/v10",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_structures_are_redacted_all_the_way_down() -> None:
    register_secret("nested-secret-value-77")
    value = {"a": ["nested-secret-value-77", ("x", "nested-secret-value-77")], "n": 3}
    assert redact_value(value) == {"a": ["***", ("x", "***")], "n": 3}


def test_shipcords_own_secrets_are_registered_at_start() -> None:
    import logging

    import structlog

    from shipcord.app import prepare
    from shipcord.settings import load_settings
    from workflows import tokens

    api_key = "temporal-cloud-api-key-value-31"
    payload_key = "UGF5bG9hZEtleVBheWxvYWRLZXlQYXlsb2FkS2V5MDE="
    settings = load_settings(
        _env_file=None,
        discord_token="shipcord-own-token-value-53",
        temporal_address="example.tmprl.cloud:7233",
        temporal_api_key=api_key,
        payload_key=payload_key,
    )
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    try:
        prepare(settings)
    finally:
        for handler in list(root.handlers):
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.setLevel(saved_level)
        structlog.reset_defaults()
        tokens.use_env_file(None)
    text = f"{api_key} {payload_key} shipcord-own-token-value-53"
    assert redact(text) == "*** *** ***"
