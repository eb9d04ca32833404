"""The codec endpoint: the Temporal Web UI, in the browser, decodes shipcord's encrypted
payloads by posting them here (Temporal's remote codec protocol: POST /decode and
/encode with `{"payloads": [...]}` in protobuf JSON)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

__all__ = ["CodecServer", "start_codec_server"]

ALLOWED_HEADERS = "Content-Type, X-Namespace"
MAX_BODY_BYTES = 4 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class CodecServer:
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


def codec_app(codec: PayloadCodec, *, namespace: str, allowed_origins: set[str]) -> web.Application:
    def cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin in allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Vary"] = "Origin"
        return response

    async def preflight(request: web.Request) -> web.StreamResponse:
        return cors(request, web.Response(status=204))

    def handler(decode: bool) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            if origin is not None and origin not in allowed_origins:
                return web.Response(status=403, text="origin not allowed")
            asked = request.headers.get("X-Namespace")
            if asked is not None and asked != namespace:
                return cors(request, web.Response(status=403, text="unknown namespace"))
            try:
                payloads = json_format.Parse(await request.text(), Payloads())
            except json_format.ParseError:
                return cors(request, web.Response(status=400, text="expected {payloads: [...]}"))
            try:
                if decode:
                    converted = await codec.decode(payloads.payloads)
                else:
                    converted = await codec.encode(payloads.payloads)
            except ValueError as error:
                return cors(request, web.Response(status=400, text=str(error)))
            body = json_format.MessageToJson(Payloads(payloads=converted))
            return cors(request, web.Response(text=body, content_type="application/json"))

        return handle

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    for path, decode in (("/decode", True), ("/encode", False)):
        app.router.add_post(path, handler(decode))
        app.router.add_route("OPTIONS", path, preflight)
    return app


async def start_codec_server(
    codec: PayloadCodec,
    *,
    host: str,
    port: int,
    namespace: str,
    allowed_origins: set[str],
) -> CodecServer:
    """Serve the codec endpoint at http://{host}:{port} (port 0 picks a free one)."""
    runner = web.AppRunner(
        codec_app(codec, namespace=namespace, allowed_origins=allowed_origins),
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return CodecServer(runner=runner, port=int(bound))
