"""Interaction tokens never reach a log line, not even at DEBUG."""

from __future__ import annotations

import logging
import re

REDACTED = "***"
# discord.py's loggers that may carry a token: gateway events, REST and webhook calls.
LOGGERS = ("discord.gateway", "discord.http", "discord.webhook.async_", "discord.interactions")
_PATTERNS = (
    re.compile(r"(/interactions/\d+/)[^/\s'\"?]+"),
    re.compile(r"(/webhooks/\d+/)[^/\s'\"?]+"),
    re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+"""),
)


def redact_interaction_tokens(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


class InteractionTokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_interaction_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_FILTER = InteractionTokenFilter()


def hide_interaction_tokens() -> None:
    """Install the filter (once) on every discord.py logger that may log a token."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
