"""Interaction callbacks (POST /interactions/{id}/{token}/callback) and the interaction
webhook: followups and @original / {message_id} get, edit, delete."""

from __future__ import annotations

import time
from typing import Any

from .api import ApiError, ApiRequest, ApiResult, ApiServer
from .messages import message_fields
from .payloads import message_payload
from .rest import RestConfig, unknown_message
from .state import (
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMMAND,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_LOADING,
    DoubleState,
    InteractionRecord,
    InteractionResponseRecord,
    MessageRecord,
)

ALLOWED_CALLBACKS = {
    INTERACTION_COMMAND: {4, 5, 9},
    INTERACTION_AUTOCOMPLETE: {8},
    INTERACTION_COMPONENT: {4, 5, 6, 7, 9},
    INTERACTION_MODAL_SUBMIT: {4, 5, 6, 7},
}
TYPE_CHAT_INPUT_COMMAND = 20


def unknown_interaction() -> ApiError:
    return ApiError(404, 10062, "Unknown interaction")


def unknown_webhook() -> ApiError:
    return ApiError(404, 10015, "Unknown Webhook")


def invalid_webhook_token() -> ApiError:
    return ApiError(401, 50027, "Invalid Webhook Token")


class InteractionHandlers:
    def __init__(
        self,
        state: DoubleState,
        api: ApiServer,
        config: RestConfig,
        *,
        callback_deadline: float | None = None,
        token_lifetime: float = 900.0,
    ) -> None:
        self.state = state
        self.config = config
        self.callback_deadline = callback_deadline
        self.token_lifetime = token_lifetime
        r = api.router
        r.add("POST", "/interactions/{interaction_id}/{token}/callback", self.callback, auth=False)
        r.add("POST", "/webhooks/{app_id}/{token}", self.execute, auth=False)
        r.add("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", self.get, auth=False)
        r.add("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}", self.edit, auth=False)
        r.add("DELETE", "/webhooks/{app_id}/{token}/messages/{message_id}", self.delete, auth=False)

    # -- helpers ---------------------------------------------------------

    def _by_webhook(self, req: ApiRequest) -> InteractionRecord:
        record = self.state.interactions_by_token.get(req.params["token"])
        if record is None or str(record.application_id) != req.params["app_id"]:
            raise unknown_webhook()
        req.identity = record.bot_user_id
        if not record.acknowledged:
            raise unknown_webhook()
        if time.monotonic() - record.dispatched_at > self.token_lifetime:
            raise invalid_webhook_token()  # an interaction's token lives 15 minutes
        return record

    def _limit(self, record: InteractionRecord) -> dict[str, str]:
        """The interaction's own bucket: its token is the major parameter, not the app id."""
        return self.config.take("webhook", record.token)

    def _target(self, req: ApiRequest, record: InteractionRecord) -> MessageRecord:
        raw = req.params["message_id"]
        if raw == "@original":
            message_id = record.original_message_id
        else:
            message_id = int(raw) if raw.isdigit() else None
            allowed = {record.original_message_id, *record.followup_message_ids}
            if message_id not in allowed:
                message_id = None
        message = self.state.messages.get(message_id) if message_id is not None else None
        if message is None or message.deleted:
            raise unknown_message()
        return message

    def _fields(
        self, req: ApiRequest, record: InteractionRecord, existing: MessageRecord | None
    ) -> dict[str, Any]:
        return message_fields(
            self.state,
            req.json_object(),
            req.files,
            base_url=self.config.base_url,
            channel_id=record.channel_id,
            existing=existing,
        )

    def _new_message(
        self, record: InteractionRecord, fields: dict[str, Any], *, message_type: int
    ) -> MessageRecord:
        return self.state.create_message(
            record.channel_id,
            record.bot_user_id,
            **{
                "type": message_type,
                **fields,
                "webhook_id": record.application_id,
                "application_id": record.application_id,
                "interaction_id": record.id,
            },
        )

    def _log(
        self,
        record: InteractionRecord,
        kind: str,
        type: int | None,
        data: dict[str, Any] | None,
        message: MessageRecord | None,
    ) -> None:
        record.responses.append(
            InteractionResponseRecord(kind, type, data, message.id if message else None)
        )
        self.state.changed()

    # -- callback ----------------------------------------------------------

    async def callback(self, req: ApiRequest) -> ApiResult:
        record = self.state.interactions.get(req.param("interaction_id"))
        if record is None or record.token != req.params["token"]:
            raise unknown_interaction()
        req.identity = record.bot_user_id
        if (
            self.callback_deadline is not None
            and time.monotonic() - record.dispatched_at > self.callback_deadline
        ):
            raise unknown_interaction()
        if record.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        body = req.json_object()
        callback_type = int(body.get("type") or 0)
        data = body.get("data") or {}
        if callback_type not in ALLOWED_CALLBACKS.get(record.type, set()):
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                errors={
                    "type": {
                        "_errors": [
                            {
                                "code": "INTERACTION_CALLBACK_TYPE_INVALID",
                                "message": "Invalid callback type",
                            }
                        ]
                    }
                },
            )
        if callback_type == 8 and len(data.get("choices") or []) > 25:
            raise ApiError(400, 50035, "Invalid Form Body")
        message: MessageRecord | None = None
        command_like = record.type == INTERACTION_COMMAND
        message_type = TYPE_CHAT_INPUT_COMMAND if command_like else 0
        if callback_type == 4:
            fields = self._fields(_with_body(req, data), record, None)
            message = self._new_message(record, fields, message_type=message_type)
            record.original_message_id = message.id
        elif callback_type == 5:
            flags = MESSAGE_FLAG_LOADING | (int(data.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL)
            message = self._new_message(
                record, {"content": "", "flags": flags}, message_type=message_type
            )
            record.original_message_id = message.id
        elif callback_type in (6, 7):
            if record.component_message_id is None:
                raise ApiError(400, 40060, "This interaction has no message to update")
            message = self.state.message(record.component_message_id)
            record.original_message_id = message.id
            if callback_type == 7:
                fields = self._fields(_with_body(req, data), record, message)
                self.state.edit_message(message, fields)
        record.callback_type = callback_type
        record.callback_data = data
        self._log(record, "callback", callback_type, data, message)
        flags = message.flags if message else int(data.get("flags") or 0)
        interaction: dict[str, Any] = {
            "id": str(record.id),
            "type": record.type,
            "response_message_loading": callback_type == 5,
            "response_message_ephemeral": bool(flags & MESSAGE_FLAG_EPHEMERAL),
        }
        result: dict[str, Any] = {"interaction": interaction}
        if message is not None and callback_type in (4, 5, 7):
            interaction["response_message_id"] = str(message.id)
            result["resource"] = {
                "type": callback_type,
                "message": message_payload(self.state, message),
            }
        return ApiResult(result)

    # -- webhook ---------------------------------------------------------------

    async def execute(self, req: ApiRequest) -> ApiResult:
        record = self._by_webhook(req)
        headers = self._limit(record)
        original = (
            self.state.messages.get(record.original_message_id)
            if record.original_message_id
            else None
        )
        if (
            record.callback_type == 5
            and original is not None
            and original.loading
            and not record.followup_message_ids
        ):
            # The first followup after a "thinking" defer replaces the loading message.
            fields = self._fields(req, record, original)
            fields["flags"] = (original.flags & MESSAGE_FLAG_EPHEMERAL) | (
                fields.get("flags", 0) & ~MESSAGE_FLAG_EPHEMERAL
            )
            self.state.edit_message(original, fields)
            message = original
        else:
            fields = self._fields(req, record, None)
            message = self._new_message(record, fields, message_type=0)
        record.followup_message_ids.append(message.id)
        self._log(record, "followup", None, req.json_object(), message)
        if req.query.get("wait") not in ("1", "true", "True"):
            return ApiResult(status=204, headers=headers)
        return ApiResult(message_payload(self.state, message), headers=headers)

    async def get(self, req: ApiRequest) -> ApiResult:
        record = self._by_webhook(req)
        return ApiResult(message_payload(self.state, self._target(req, record)))

    async def edit(self, req: ApiRequest) -> ApiResult:
        record = self._by_webhook(req)
        message = self._target(req, record)
        headers = self._limit(record)
        fields = self._fields(req, record, message)
        if message.loading:
            fields["flags"] = fields.get("flags", message.flags) & ~MESSAGE_FLAG_LOADING
        self.state.edit_message(message, fields)
        kind = "edit_original" if req.params["message_id"] == "@original" else "edit_followup"
        self._log(record, kind, None, req.json_object(), message)
        return ApiResult(message_payload(self.state, message), headers=headers)

    async def delete(self, req: ApiRequest) -> ApiResult:
        record = self._by_webhook(req)
        message = self._target(req, record)
        headers = self._limit(record)
        self.state.delete_message(message)
        kind = "delete_original" if req.params["message_id"] == "@original" else "delete_followup"
        self._log(record, kind, None, None, message)
        return ApiResult(status=204, headers=headers)


def _with_body(req: ApiRequest, data: dict[str, Any]) -> ApiRequest:
    """The callback's ``data`` treated as a message body (files stay attached)."""
    return ApiRequest(
        req.raw, req.method, req.path, req.params, req.query, data, req.files, req.bot, req.identity
    )
