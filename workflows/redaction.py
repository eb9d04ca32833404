"""One redactor for every secret shipcord knows, applied wherever text leaves the process."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

__all__ = ["REDACTED", "redact", "redact_value", "register_secret", "registered_count"]

REDACTED = "***"
# Shorter values would redact ordinary words and numbers everywhere.
MIN_SECRET_LENGTH = 8

# A Discord bot token: base64 user id, timestamp, HMAC.
_DISCORD_TOKEN = re.compile(r"[\w-]{24,}\.[\w-]{6}\.[\w-]{27,}")
# `Authorization: Bot <token>` (or Bearer), whatever the token looks like once it is long.
_AUTH_VALUE = re.compile(r"\b(Bot|Bearer)(\s+)[\w.~+/=-]{20,}")
# Interaction callbacks and follow-ups carry the interaction token in the path.
_URL_TOKEN = re.compile(r"(/(?:interactions|webhooks)/\d+/)([^/?#\s'\"]+)")
# A field named like a secret in JSON or a Python repr: "token": "…", 'client_secret': '…'.
_SECRET_FIELD = re.compile(
    r"""(['"](?i:[a-z_-]*(?:token|secret|password|api[_-]?key))['"]\s*:\s*['"])([^'"]+)"""
)
# NAME=value where the name says secret: environment dumps, query strings, .env lines.
_SECRET_ASSIGNMENT = re.compile(
    r"\b((?i:[a-z0-9_]*(?:token|secret|password|passwd|api_?key|private_key)))=([^\s'\"&;,]+)"
)

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | SecretStr | None) -> None:
    """Redact `value` from everything from now on. None and very short values are ignored."""
    global _secret_pattern
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value:
        return
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _lock:
        _secrets.add(value)
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(secret) for secret in ordered))


def registered_count() -> int:
    """How many distinct secrets are registered (for tests and diagnostics)."""
    return len(_secrets)


def redact(text: str) -> str:
    """`text` with every registered secret and every secret-shaped string replaced by ***."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _DISCORD_TOKEN.sub(REDACTED, text)
    text = _AUTH_VALUE.sub(rf"\1\2{REDACTED}", text)
    text = _URL_TOKEN.sub(rf"\1{REDACTED}", text)
    text = _SECRET_FIELD.sub(rf"\1{REDACTED}", text)
    return _SECRET_ASSIGNMENT.sub(rf"\1={REDACTED}", text)


def redact_value(value: Any) -> Any:
    """`redact` applied to every string inside a structure of dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(redact_value(item) for item in value)
    return value
