"""Interaction tokens never reach a log line, not even at DEBUG.

An interaction's token lets whoever holds it answer and edit as shipcord in that channel
for 15 minutes. discord.py logs at DEBUG every gateway event it receives (an interaction's
payload carries its token) and the URL of every REST call it makes (an interaction's
callback and webhook URLs carry it too). A filter on those loggers rewrites such records
before any handler sees them, whatever handlers the application installed.
"""

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
