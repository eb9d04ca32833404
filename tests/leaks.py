"""Helpers for the tests that look for secrets where none may be: what each place holds,
as text, including what the places encode (Temporal payloads are base64 in JSON)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory


def payload_data(message: Message) -> Iterator[bytes]:
    """The data of every Payload anywhere inside `message`."""
    if isinstance(message, Payload):
        yield message.data
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            yield from payload_data(value)
            continue
        # A repeated field, or a map (its values).
        for item in value.values() if hasattr(value, "values") else value:
            if isinstance(item, Message):
                yield from payload_data(item)


def history_plaintext(history: WorkflowHistory) -> str:
    """The history as JSON, plus every payload it carries, decoded."""
    parts = [history.to_json()]
    for event in history.events:
        for data in payload_data(event):
            parts.append(data.decode("utf-8", "replace"))
    return "\n".join(parts)


def hits(secrets: Iterable[str], *places: str | bytes) -> list[str]:
    """Which secrets occur in which place (as text, or base64 of it)."""
    found = []
    for secret in secrets:
        forms = [secret.encode(), base64.b64encode(secret.encode())[:-4]]
        for index, place in enumerate(places):
            haystack = place if isinstance(place, bytes) else place.encode()
            if any(form in haystack for form in forms):
                found.append(f"{secret[:6]}… in place #{index}")
    return found
