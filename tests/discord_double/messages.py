"""Validation and normalisation of message create/edit bodies (channel and webhook routes)."""

from __future__ import annotations

from typing import Any

from .api import ApiError, UploadedFile, form_error
from .state import MESSAGE_FLAG_EPHEMERAL, DoubleState, MessageRecord

MAX_CONTENT = 2000
MAX_EMBEDS = 10
# SUPPRESS_EMBEDS | EPHEMERAL | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
SETTABLE_FLAGS = (1 << 2) | MESSAGE_FLAG_EPHEMERAL | (1 << 12) | (1 << 15)


def attachment_payloads(
    state: DoubleState,
    base_url: str,
    channel_id: int,
    files: list[UploadedFile],
    declared: list[dict[str, Any]] | None,
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    by_index = {str(a.get("id")): a for a in declared or []}
    attachments: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = {}
    for index, upload in enumerate(files):
        meta = by_index.get(str(index), {})
        attachment_id = state.snowflake()
        filename = str(meta.get("filename") or upload.filename)
        url = f"{base_url}/attachments/{channel_id}/{attachment_id}/{filename}"
        attachments.append(
            {
                "id": str(attachment_id),
                "filename": filename,
                "description": meta.get("description"),
                "content_type": upload.content_type,
                "size": len(upload.data),
                "url": url,
                "proxy_url": url,
            }
        )
        blobs[str(attachment_id)] = upload.data
    return attachments, blobs


def message_fields(
    state: DoubleState,
    body: dict[str, Any],
    files: list[UploadedFile],
    *,
    base_url: str,
    channel_id: int,
    existing: MessageRecord | None = None,
) -> dict[str, Any]:
    """Fields to create a message with, or to change on ``existing``."""
    fields: dict[str, Any] = {}
    if "content" in body:
        content = body["content"] if body["content"] is not None else ""
        if not isinstance(content, str):
            content = str(content)
        if len(content) > MAX_CONTENT:
            raise form_error(
                "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
            )
        fields["content"] = content
    if "embeds" in body or "embed" in body:
        embeds = body.get("embeds")
        if embeds is None and body.get("embed") is not None:
            embeds = [body["embed"]]
        embeds = list(embeds or [])
        if len(embeds) > MAX_EMBEDS:
            raise form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        fields["embeds"] = embeds
    if "components" in body:
        fields["components"] = list(body["components"] or [])
    if "flags" in body and body["flags"] is not None:
        flags = int(body["flags"])
        if existing is not None:
            keep = existing.flags & MESSAGE_FLAG_EPHEMERAL
            flags = (flags & SETTABLE_FLAGS & ~MESSAGE_FLAG_EPHEMERAL) | keep
        fields["flags"] = flags & SETTABLE_FLAGS
    if existing is None:
        for key in ("tts", "nonce"):
            if key in body:
                fields[key] = body[key]
        reference = body.get("message_reference")
        if reference:
            fields["message_reference"] = _reference(state, reference, channel_id)
            fields["type"] = 19
    new_attachments, blobs = attachment_payloads(
        state, base_url, channel_id, files, body.get("attachments")
    )
    if existing is not None and "attachments" in body:
        keep_ids = {str(a.get("id")) for a in body["attachments"] or []}
        kept = [a for a in existing.attachments if a["id"] in keep_ids]
        fields["attachments"] = kept + new_attachments
        fields["files"] = {k: v for k, v in existing.files.items() if k in keep_ids} | blobs
    elif new_attachments:
        previous = existing.attachments if existing else []
        fields["attachments"] = previous + new_attachments
        fields["files"] = (existing.files if existing else {}) | blobs
    if (
        existing is None
        and not any(fields.get(key) for key in ("content", "embeds", "components", "attachments"))
        and not body.get("sticker_ids")
        and not body.get("poll")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")
    return fields


def _reference(state: DoubleState, reference: dict[str, Any], channel_id: int) -> dict[str, Any]:
    message_id = reference.get("message_id")
    target = state.messages.get(int(message_id)) if message_id else None
    if (target is None or target.deleted) and reference.get("fail_if_not_exists", True):
        raise form_error(
            "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
        )
    result: dict[str, Any] = {
        "type": int(reference.get("type") or 0),
        "message_id": str(message_id) if message_id else None,
        "channel_id": str(
            reference.get("channel_id") or (target.channel_id if target else channel_id)
        ),
    }
    guild_id = reference.get("guild_id") or (target.guild_id if target else None)
    if guild_id:
        result["guild_id"] = str(guild_id)
    return result
