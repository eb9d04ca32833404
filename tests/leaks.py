"""Helpers for the tests that look for secrets where none may be: what each place holds,
as text, including what the places encode (Temporal payloads are base64 in JSON)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory


def payloads(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere inside `message`."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            yield from payloads(value)
            continue
        # A repeated field, or a map (its values).
        for item in value.values() if hasattr(value, "values") else value:
            if isinstance(item, Message):
                yield from payloads(item)


def payload_data(message: Message) -> Iterator[bytes]:
    """The data of every Payload anywhere inside `message`."""
    for payload in payloads(message):
        yield payload.data


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


def shown_plaintext(shown_json: str) -> str:
    """`temporal workflow show --output json` with every payload's data decoded beside it
    (the CLI prints payload data as base64)."""
    parts = [shown_json]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if "metadata" in node and isinstance(data, str):
                parts.append(base64.b64decode(data).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for line in shown_json.splitlines() or [shown_json]:
        try:
            walk(json.loads(line))
        except ValueError:
            continue
    try:
        walk(json.loads(shown_json))
    except ValueError:
        pass
    return "\n".join(parts)
