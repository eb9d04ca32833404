"""REST plumbing: one aiohttp handler for everything under the API root.

It applies global latency and injected faults, parses JSON or multipart bodies,
checks the request against Discord's OpenAPI spec (:mod:`.validation`; a violation is
recorded in ``state.violations`` and answered as Discord would: 404, 405 or 400 50035
Invalid Form Body), authenticates ``Authorization: Bot <token>``, routes to a handler,
renders errors the way Discord does and records every request. JSON responses always carry exactly
``Content-Type: application/json`` (discord.py only decodes that literal value).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from .faults import FaultInjector
from .state import BotRecord, DoubleState, RequestRecord
from .validation import SpecValidator, Violation, form_errors

JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers={**(headers or {}), **JSON_HEADERS},
    )


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.override = body
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        if self.override is not None:
            return self.override
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def spec_error(violations: list[Violation]) -> ApiError:
    """What Discord answers to a request its spec does not allow."""
    kinds = {v.kind for v in violations}
    if kinds & {"route", "path"}:
        return ApiError(404, 0, "404: Not Found")
    if "method" in kinds:
        return ApiError(405, 0, "405: Method Not Allowed")
    return ApiError(400, 50035, "Invalid Form Body", errors=form_errors(violations))


def form_error(field_name: str, code: str, message: str) -> ApiError:
    return ApiError(
        400,
        50035,
        "Invalid Form Body",
        errors={field_name: {"_errors": [{"code": code, "message": message}]}},
    )


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class ApiResult:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ApiRequest:
    raw: web.Request
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[UploadedFile]
    bot: BotRecord | None
    identity: int | None = None
    """Bot user id the request is attributed to (set by webhook handlers too)."""

    def param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError:
            raise ApiError(404, 0, "404: Not Found") from None

    def json_object(self) -> dict[str, Any]:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise ApiError(400, 50109, "The request body contains invalid JSON.")
        return self.body

    def require_bot(self) -> BotRecord:
        if self.bot is None:
            raise ApiError(401, 0, "401: Unauthorized")
        return self.bot


Handler = Callable[[ApiRequest], Awaitable[ApiResult]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self.routes.append(Route(method, re.compile(f"^{regex}$"), handler, auth))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """A route, or None. Raises 405 when only the method is wrong."""
        path_matched = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            path_matched = True
            if route.method == method:
                return route, found.groupdict()
        if path_matched:
            raise ApiError(405, 0, "405: Method Not Allowed")
        return None


class ApiServer:
    """Owns the router and the cross-cutting behaviour for every REST request."""

    def __init__(self, state: DoubleState, *, prefix: str = "/api/v10") -> None:
        self.state = state
        self.prefix = prefix
        self.router = Router()
        self.faults = FaultInjector()
        self.latency = 0.0
        self.spec: SpecValidator | None = None
        """Set (by DiscordDouble) to check every request against Discord's spec."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info.get("tail", "")
        method = request.method.upper()
        query = {k: v for k, v in request.query.items()}
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        bot = self._authenticate(request)
        body: Any = None
        files: list[UploadedFile] = []
        api_request: ApiRequest | None = None
        try:
            body, files = await self._parse_body(request)
            api_request = ApiRequest(request, method, path, {}, query, body, files, bot)
            api_request.identity = bot.user_id if bot else None
            self._check_spec(request, method, path, query, body)
            fault = self.faults.take(method, path)
            if fault is not None:
                if fault.delay > 0:
                    await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    return self._finish(api_request, self._fault_response(fault.status, fault))
            matched = self.router.match(method, path)
            if matched is None:
                raise ApiError(404, 0, "404: Not Found")
            route, params = matched
            api_request.params = params
            if route.auth:
                api_request.require_bot()
            result = await route.handler(api_request)
            response = self._render(result)
        except ApiError as error:
            response = json_response(error.body(), status=error.status, headers=error.headers)
        if api_request is None:
            api_request = ApiRequest(request, method, path, {}, query, body, files, bot)
        return self._finish(api_request, response)

    def _check_spec(
        self, request: web.Request, method: str, path: str, query: dict[str, str], body: Any
    ) -> None:
        """Record and refuse a request Discord's spec does not allow."""
        if self.spec is None:
            return
        multipart = request.content_type.startswith("multipart/")
        found = self.spec.check(method, path, query, body, multipart=multipart)
        if not found:
            return
        self.state.violations.extend(found)
        raise spec_error(found)

    def _authenticate(self, request: web.Request) -> BotRecord | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bot "):
            return None
        return self.state.bots_by_token.get(header[len("Bot ") :].strip())

    async def _parse_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if not request.can_read_body:
            return None, []
        if request.content_type.startswith("multipart/"):
            return await self._parse_multipart(request)
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None

    @staticmethod
    async def _parse_multipart(request: web.Request) -> tuple[Any, list[UploadedFile]]:
        body: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name or ""
            data = await part.read(decode=False)
            if name == "payload_json":
                body = json.loads(data)
            else:
                files.append(
                    UploadedFile(
                        field=name,
                        filename=part.filename or name,
                        content_type=part.headers.get("Content-Type", "application/octet-stream"),
                        data=bytes(data),
                    )
                )
        return body, files

    @staticmethod
    def _fault_response(status: int, fault: Any) -> web.Response:
        headers = {"Via": "1.1 google", "Retry-After": "1"} if status == 429 else {}
        return json_response(fault.response_body(), status=status, headers=headers)

    @staticmethod
    def _render(result: ApiResult) -> web.Response:
        if result.status == 204 or (result.body is None and result.status < 300):
            return web.Response(status=204, headers=result.headers)
        return json_response(result.body, status=result.status, headers=result.headers)

    def _channel_of(self, path: str) -> int | None:
        """The channel a request writes to: in its path, or its interaction's channel."""
        found = _CHANNEL_PATH.match(path) or _WEBHOOK_PATH.match(path)
        if found is None:
            return None
        if found.re is _CHANNEL_PATH:
            return int(found.group(1))
        interaction = self.state.interactions_by_token.get(found.group(1))
        return interaction.channel_id if interaction is not None else None

    def _finish(self, api_request: ApiRequest, response: web.Response) -> web.Response:
        if response.status == 429:
            self.state.rate_limited_count += 1
            channel_id = self._channel_of(api_request.path)
            if channel_id is not None:
                by_channel = self.state.rate_limited_by_channel
                by_channel[channel_id] = by_channel.get(channel_id, 0) + 1
        self.state.requests.append(
            RequestRecord(
                method=api_request.method,
                path=api_request.path,
                query=api_request.query,
                json=api_request.body,
                bot_user_id=api_request.identity,
                status=response.status,
                at=time.time(),
                headers={
                    k: v for k, v in api_request.raw.headers.items() if k.lower() != "authorization"
                },
            )
        )
        self.state.changed()
        return response


_CHANNEL_PATH = re.compile(r"^/channels/(\d+)")
_WEBHOOK_PATH = re.compile(r"^/webhooks/\d+/([^/]+)")
