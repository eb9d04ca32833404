"""The /_control HTTP API: lets another process seed, drive and inspect a running double.

All bodies and answers are JSON; snowflakes are strings (ids may also be sent as ints).
Bots may be named by user id, username or token; users by id or username.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .api import json_response
from .seed import apply_seed
from .state import (
    InteractionRecord,
    MessageRecord,
    MessageVersion,
    RequestRecord,
)

if TYPE_CHECKING:
    from .server import DiscordDouble

ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def version_json(version: MessageVersion) -> dict[str, Any]:
    return {
        "content": version.content,
        "embeds": version.embeds,
        "components": version.components,
        "flags": version.flags,
        "attachments": version.attachments,
        "at": version.at.isoformat(),
    }


def message_json(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "guild_id": None if message.guild_id is None else str(message.guild_id),
        "author_id": str(message.author_id),
        "content": message.content,
        "text": message.text(),
        "embeds": message.embeds,
        "components": message.components,
        "flags": message.flags,
        "ephemeral": message.ephemeral,
        "type": message.type,
        "message_reference": message.message_reference,
        "attachments": message.attachments,
        "webhook_id": None if message.webhook_id is None else str(message.webhook_id),
        "interaction_id": None if message.interaction_id is None else str(message.interaction_id),
        "deleted": message.deleted,
        "edit_count": message.edit_count,
        "versions": [version_json(v) for v in message.versions],
        "created_at": message.created_at.isoformat(),
    }


def interaction_json(double: DiscordDouble, record: InteractionRecord) -> dict[str, Any]:
    reply_id = record.reply_message_id
    reply = double.state.messages.get(reply_id) if reply_id is not None else None
    return {
        "id": str(record.id),
        "token": record.token,
        "type": record.type,
        "bot_user_id": str(record.bot_user_id),
        "user_id": str(record.user_id),
        "guild_id": None if record.guild_id is None else str(record.guild_id),
        "channel_id": str(record.channel_id),
        "data": record.data,
        "callback_type": record.callback_type,
        "callback_data": record.callback_data,
        "has_reply": record.has_reply,
        "choices": record.choices,
        "original_message_id": _sid(record.original_message_id),
        "followup_message_ids": [str(m) for m in record.followup_message_ids],
        "reply": None if reply is None else message_json(reply),
        "responses": [
            {
                "kind": r.kind,
                "type": r.type,
                "data": r.data,
                "message_id": _sid(r.message_id),
                "at": r.at.isoformat(),
            }
            for r in record.responses
        ],
    }


def request_json(request: RequestRecord) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "json": request.json,
        "bot_user_id": _sid(request.bot_user_id),
        "status": request.status,
        "at": request.at,
    }


def _sid(value: int | None) -> str | None:
    return None if value is None else str(value)


def state_json(double: DiscordDouble, *, include_requests: bool = True) -> dict[str, Any]:
    state = double.state
    channels: dict[str, Any] = {}
    for channel in state.channels.values():
        channels[str(channel.id)] = {
            "id": str(channel.id),
            "type": channel.type,
            "name": channel.name,
            "guild_id": _sid(channel.guild_id),
            "recipient_ids": [str(r) for r in channel.recipient_ids],
            "deny_bots": channel.deny_bots,
            "messages": [message_json(state.messages[m]) for m in channel.message_ids],
        }
    dms: dict[str, list[dict[str, Any]]] = {}
    for (_, user_id), channel_id in state.dm_channels.items():
        dms.setdefault(str(user_id), []).extend(channels[str(channel_id)]["messages"])
    commands: dict[str, Any] = {}
    for app_id, table in state.global_commands.items():
        commands.setdefault(str(app_id), {"global": [], "guilds": {}})["global"] = list(
            table.values()
        )
    for (app_id, guild_id), table in state.guild_commands.items():
        entry = commands.setdefault(str(app_id), {"global": [], "guilds": {}})
        entry["guilds"][str(guild_id)] = list(table.values())
    result: dict[str, Any] = {
        "api_base": double.api_base,
        "gateway_url": str(double.gateway_url),
        "bots": [
            {
                "user_id": str(b.user_id),
                "application_id": str(b.application_id),
                "username": b.username,
                "connected": double.bot_connected(b),
                "identify_count": b.identify_count,
                "resume_count": b.resume_count,
            }
            for b in state.bots.values()
        ],
        "users": [
            {"id": str(u.id), "username": u.username, "bot": u.bot, "dms_closed": u.dms_closed}
            for u in state.users.values()
        ],
        "guilds": [
            {
                "id": str(g.id),
                "name": g.name,
                "owner_id": str(g.owner_id),
                "channel_ids": [str(c) for c in g.channel_ids],
                "roles": [
                    {
                        "id": str(r),
                        "name": state.roles[r].name,
                        "permissions": str(state.roles[r].permissions),
                    }
                    for r in g.role_ids
                ],
                "members": [
                    {"user_id": str(m.user_id), "roles": [str(r) for r in m.roles]}
                    for m in g.members.values()
                ],
            }
            for g in state.guilds.values()
        ],
        "channels": channels,
        "dms": dms,
        "commands": commands,
        "interactions": [interaction_json(double, i) for i in state.interactions.values()],
        "rate_limited_count": state.rate_limited_count,
        "rate_limited_by_channel": {str(k): v for k, v in state.rate_limited_by_channel.items()},
        "faults": [
            {
                "method": f.method,
                "path_regex": f.path_regex,
                "status": f.status,
                "times": f.times,
                "hits": f.hits,
            }
            for f in double.api.faults.rules
        ],
        "latency": double.latency,
    }
    result["violations"] = [v.as_json() for v in state.violations]
    if include_requests:
        result["requests"] = [request_json(r) for r in state.requests]
    return result


class ControlApi:
    def __init__(self, double: DiscordDouble) -> None:
        self.double = double

    def register(self, app: web.Application) -> None:
        routes: list[tuple[str, str, ControlHandler]] = [
            ("GET", "/_control/state", self.get_state),
            ("POST", "/_control/seed", self.seed),
            ("POST", "/_control/interactions", self.dispatch_interaction),
            ("GET", "/_control/interactions/{interaction_id}", self.get_interaction),
            ("POST", "/_control/wait", self.wait),
            ("POST", "/_control/faults", self.add_fault),
            ("DELETE", "/_control/faults", self.clear_faults),
            ("PUT", "/_control/latency", self.set_latency),
            ("POST", "/_control/disconnect", self.disconnect),
            ("POST", "/_control/messages", self.post_message),
            ("PATCH", "/_control/users/{user_id}", self.patch_user),
            ("PATCH", "/_control/channels/{channel_id}", self.patch_channel),
            ("GET", "/_control/violations", self.get_violations),
            ("DELETE", "/_control/violations", self.take_violations),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._wrap(handler))

    @staticmethod
    def _wrap(handler: ControlHandler) -> ControlHandler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ControlError as error:
                return json_response({"error": str(error)}, status=error.status)
            except TimeoutError as error:
                return json_response({"error": str(error)}, status=408)
            except (KeyError, ValueError, TypeError) as error:
                return json_response({"error": f"{type(error).__name__}: {error}"}, status=400)

        return wrapped

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return {}
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ControlError(400, "body must be a JSON object")
        return body

    async def get_state(self, request: web.Request) -> web.StreamResponse:
        include = request.query.get("requests", "1") not in ("0", "false")
        return json_response(state_json(self.double, include_requests=include))

    async def get_violations(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "violations": [v.as_json() for v in self.double.violations],
                "report": self.double.violation_report(),
            }
        )

    async def take_violations(self, request: web.Request) -> web.StreamResponse:
        report = self.double.violation_report()
        taken = self.double.take_violations()
        return json_response({"violations": [v.as_json() for v in taken], "report": report})

    async def seed(self, request: web.Request) -> web.StreamResponse:
        return json_response(apply_seed(self.double, await self._body(request)))

    async def dispatch_interaction(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        record = await self.double.dispatch_interaction(
            body["bot"],
            user=body["user"],
            kind=body.get("kind", "command"),
            command=body.get("command"),
            options=body.get("options"),
            focused=body.get("focused"),
            custom_id=body.get("custom_id"),
            message=body.get("message_id"),
            component_type=int(body.get("component_type", 2)),
            values=body.get("values"),
            guild=body.get("guild_id"),
            channel=body.get("channel_id"),
            locale=body.get("locale", "en-US"),
            connect_timeout=float(body.get("timeout", 10.0)),
        )
        return json_response(interaction_json(self.double, record))

    async def get_interaction(self, request: web.Request) -> web.StreamResponse:
        record = self.double.interaction(int(request.match_info["interaction_id"]))
        return json_response(interaction_json(self.double, record))

    async def wait(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        kind = body.get("kind")
        timeout = float(body.get("timeout", 10.0))
        double = self.double
        if kind == "bot_ready":
            bot = await double.wait_for_bot_ready(body["bot"], timeout)
            return json_response({"user_id": str(bot.user_id), "connected": True})
        if kind == "interaction_reply":
            record = await double.wait_for_interaction_reply(int(body["interaction_id"]), timeout)
            return json_response(interaction_json(double, record))
        if kind == "message":
            message = await double.wait_for_message(
                body.get("channel_id"),
                _message_filter(body),
                dm_user=body.get("dm_user"),
                timeout=timeout,
            )
            return json_response(message_json(message))
        if kind == "request":
            method = body.get("method")
            path_regex = body.get("path_regex")
            status = body.get("status")
            count = int(body.get("count", 1))

            def matching() -> list[RequestRecord]:
                found = double.requests_matching(method, path_regex)
                return [r for r in found if status is None or r.status == int(status)]

            await double.wait_for(
                lambda: len(matching()) >= count,
                timeout,
                f"{count} request(s) {method or '*'} {path_regex or '.*'} status {status or '*'}",
            )
            return json_response([request_json(r) for r in matching()])
        if kind == "rate_limited":
            count = int(body.get("count", 1))
            await double.wait_for(
                lambda: double.rate_limited_count >= count, timeout, f"{count} 429 response(s)"
            )
            return json_response({"rate_limited_count": double.rate_limited_count})
        raise ControlError(400, f"unknown wait kind {kind!r}")

    async def add_fault(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        rule = self.double.inject_fault(
            body.get("method", "*"),
            body["path_regex"],
            status=body.get("status", 500),
            times=body.get("times", 1),
            delay=float(body.get("delay", 0.0)),
            body=body.get("body"),
        )
        return json_response({"method": rule.method, "path_regex": rule.path_regex})

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.double.clear_faults()
        return json_response({"faults": 0})

    async def set_latency(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        self.double.latency = float(body.get("seconds", 0.0))
        return json_response({"latency": self.double.latency})

    async def disconnect(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        closed = await self.double.disconnect_bot(
            body["bot"],
            code=int(body.get("code", 4000)),
            resumable=bool(body.get("resumable", True)),
        )
        return json_response({"closed": closed})

    async def post_message(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        channel_id = body.get("channel_id")
        if channel_id is None:
            channel_id = self.double.dm_channel(body["bot"], body["author"]).id
        message = self.double.post_user_message(channel_id, body["author"], body["content"])
        return json_response(message_json(message))

    async def patch_user(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        state = self.double.state
        user = state.user(state.resolve_user_id(request.match_info["user_id"]))
        if "dms_closed" in body:
            user.dms_closed = bool(body["dms_closed"])
        state.changed()
        return json_response({"id": str(user.id), "dms_closed": user.dms_closed})

    async def patch_channel(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        state = self.double.state
        channel = state.channel(int(request.match_info["channel_id"]))
        if "deny_bots" in body:
            channel.deny_bots = bool(body["deny_bots"])
        if "denied_user_ids" in body:
            channel.denied_user_ids = {int(u) for u in body["denied_user_ids"]}
        state.changed()
        return json_response({"id": str(channel.id), "deny_bots": channel.deny_bots})


def _message_filter(body: dict[str, Any]) -> Callable[[MessageRecord], bool]:
    contains = body.get("contains")
    author_id = body.get("author_id")
    min_edits = int(body.get("min_edits", 0))

    def accept(message: MessageRecord) -> bool:
        if contains is not None and contains not in message.text():
            return False
        if author_id is not None and str(message.author_id) != str(author_id):
            return False
        return message.edit_count >= min_edits

    return accept
