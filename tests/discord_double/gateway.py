"""The gateway: a WebSocket endpoint speaking Discord's JSON protocol (plain text frames).

discord.py asks for ``compress=zlib-stream`` in the query string but only decompresses
*binary* frames; text frames are parsed as plain JSON, so the double never compresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from .payloads import (
    application_flags,
    guild_create_payload,
    member_payload,
    message_payload,
    self_user_payload,
)
from .state import CHANNEL_DM, BotRecord, DoubleState, MessageRecord

log = logging.getLogger(__name__)

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_VOICE_STATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

CLOSE_UNKNOWN_ERROR = 4000
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_DISALLOWED_INTENTS = 4014


@dataclass
class GatewaySession:
    """Survives a dropped connection so the client can RESUME it."""

    session_id: str
    bot: BotRecord
    intents: int
    shard: list[int]
    seq: int = 0


class GatewayConnection:
    """One WebSocket. Frames go through a queue drained by a single writer task, so
    events keep their order and synchronous code can enqueue without awaiting."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: GatewaySession | None = None
        self.live = False
        self._outbox: asyncio.Queue[tuple[str, asyncio.Future[None]]] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name="discord-double-gw-writer")

    @property
    def bot(self) -> BotRecord | None:
        return self.session.bot if self.session else None

    def enqueue(self, op: int, d: Any = None, t: str | None = None) -> asyncio.Future[None]:
        frame: dict[str, Any] = {"op": op, "d": d, "s": None, "t": None}
        if op == OP_DISPATCH:
            assert self.session is not None
            self.session.seq += 1
            frame["s"] = self.session.seq
            frame["t"] = t
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume_exception)
        self._outbox.put_nowait((json.dumps(frame, separators=(",", ":")), future))
        return future

    async def send(self, op: int, d: Any = None, t: str | None = None) -> None:
        await self.enqueue(op, d, t)

    async def _write_loop(self) -> None:
        while True:
            text, future = await self._outbox.get()
            try:
                await self.ws.send_str(text)
            except Exception as exc:  # connection gone: fail this and later frames
                if not future.done():
                    future.set_exception(ConnectionError(f"gateway connection closed: {exc}"))
                continue
            if not future.done():
                future.set_result(None)

    async def close(self, code: int) -> None:
        self.live = False
        with contextlib.suppress(Exception):
            await self.ws.close(code=code)

    def stop_writer(self) -> None:
        self._writer.cancel()
        while not self._outbox.empty():
            _, future = self._outbox.get_nowait()
            if not future.done():
                future.set_exception(ConnectionError("gateway connection closed"))


def _consume_exception(future: asyncio.Future[None]) -> None:
    """Fire-and-forget frames must not log "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


class GatewayHub:
    def __init__(self, state: DoubleState, *, heartbeat_interval_ms: int = 41250) -> None:
        self.state = state
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.gateway_url = ""
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, GatewaySession] = {}
        self.events_sent = 0
        state.message_listeners.append(self._on_message_event)

    # -- queries -------------------------------------------------------

    def live_connections(self, bot_user_id: int) -> list[GatewayConnection]:
        return [
            c
            for c in self.connections
            if c.live and c.session is not None and c.session.bot.user_id == bot_user_id
        ]

    def latest_connection(self, bot_user_id: int) -> GatewayConnection | None:
        live = self.live_connections(bot_user_id)
        return live[-1] if live else None

    # -- sending -------------------------------------------------------

    def dispatch(self, bot_user_id: int, event: str, data: Any) -> asyncio.Future[None] | None:
        """Send one dispatch to the bot's newest live connection (None if offline)."""
        connection = self.latest_connection(bot_user_id)
        if connection is None:
            return None
        self.events_sent += 1
        future = connection.enqueue(OP_DISPATCH, data, event)
        self.state.changed()
        return future

    def _on_message_event(self, event: str, message: MessageRecord) -> None:
        if message.ephemeral:
            return
        channel = self.state.channels.get(message.channel_id)
        if channel is None:
            return
        seen: set[int] = set()
        for connection in reversed(self.connections):
            session = connection.session
            if not connection.live or session is None or session.bot.user_id in seen:
                continue
            bot_id = session.bot.user_id
            seen.add(bot_id)
            if channel.type == CHANNEL_DM:
                if bot_id not in channel.recipient_ids:
                    continue
                if not session.intents & INTENT_DIRECT_MESSAGES:
                    continue
            else:
                guild = self.state.guilds.get(channel.guild_id or 0)
                if guild is None or bot_id not in guild.members:
                    continue
                if not session.intents & INTENT_GUILD_MESSAGES:
                    continue
            if event == "MESSAGE_DELETE":
                data: dict[str, Any] = {"id": str(message.id), "channel_id": str(channel.id)}
                if channel.guild_id is not None:
                    data["guild_id"] = str(channel.guild_id)
            else:
                data = message_payload(self.state, message)
                if not self._can_read_content(session, message, channel.type):
                    data.update(content="", embeds=[], components=[], attachments=[])
            connection.enqueue(OP_DISPATCH, data, event)
            self.events_sent += 1

    @staticmethod
    def _can_read_content(
        session: GatewaySession, message: MessageRecord, channel_type: int
    ) -> bool:
        bot_id = session.bot.user_id
        return bool(
            session.intents & INTENT_MESSAGE_CONTENT
            or channel_type == CHANNEL_DM
            or message.author_id == bot_id
            or f"<@{bot_id}>" in message.content
            or f"<@!{bot_id}>" in message.content
        )

    # -- connection lifecycle -----------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, timeout=2.0)
        await ws.prepare(request)
        connection = GatewayConnection(ws)
        self.connections.append(connection)
        try:
            await connection.send(OP_HELLO, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_frame(connection, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await connection.close(CLOSE_DECODE_ERROR)
        except ConnectionError:
            pass
        finally:
            connection.live = False
            connection.stop_writer()
            with contextlib.suppress(ValueError):
                self.connections.remove(connection)
            self.state.changed()
        return ws

    async def _on_frame(self, connection: GatewayConnection, text: str) -> None:
        try:
            frame = json.loads(text)
            op = frame["op"]
            data = frame.get("d")
        except (ValueError, KeyError, TypeError):
            await connection.close(CLOSE_DECODE_ERROR)
            return
        if op == OP_HEARTBEAT:
            connection.enqueue(OP_HEARTBEAT_ACK)
        elif op == OP_IDENTIFY:
            await self._identify(connection, data or {})
        elif op == OP_RESUME:
            await self._resume(connection, data or {})
        elif connection.session is None:
            await connection.close(CLOSE_NOT_AUTHENTICATED)
        elif op == OP_REQUEST_MEMBERS:
            self._request_members(connection, data or {})
        # presence updates, voice state updates: accepted and ignored

    async def _identify(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        if connection.session is not None:
            await connection.close(CLOSE_ALREADY_AUTHENTICATED)
            return
        bot = self.state.bots_by_token.get(str(data.get("token", "")).removeprefix("Bot "))
        if bot is None:
            await connection.close(CLOSE_AUTHENTICATION_FAILED)
            return
        intents = int(data.get("intents") or 0)
        if intents & PRIVILEGED_INTENTS and not bot.privileged_intents:
            await connection.close(CLOSE_DISALLOWED_INTENTS)
            return
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            bot=bot,
            intents=intents,
            shard=list(data.get("shard") or [0, 1]),
        )
        self.sessions[session.session_id] = session
        connection.session = session
        guilds = self.state.guilds_of(bot.user_id)
        ready = {
            "v": 10,
            "user": self_user_payload(bot.user),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": session.shard,
            "application": {"id": str(bot.application_id), "flags": application_flags(bot)},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
        }
        connection.enqueue(OP_DISPATCH, ready, "READY")
        last = None
        for guild in guilds:
            payload = guild_create_payload(self.state, guild, bot.user_id)
            last = connection.enqueue(OP_DISPATCH, payload, "GUILD_CREATE")
        if last is not None:
            await last
        bot.identify_count += 1
        connection.live = True
        self.state.changed()

    async def _resume(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        token = str(data.get("token", "")).removeprefix("Bot ")
        if session is None or session.bot.token != token:
            await connection.send(OP_INVALID_SESSION, False)
            return
        connection.session = session
        await connection.send(OP_DISPATCH, {}, "RESUMED")
        session.bot.resume_count += 1
        connection.live = True
        self.state.changed()

    def _request_members(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        raw_ids = data.get("guild_id")
        guild_ids = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        query = data.get("query")
        limit = int(data.get("limit") or 0)
        user_ids = {int(u) for u in data.get("user_ids") or []}
        for raw in guild_ids:
            guild = self.state.guilds.get(int(raw or 0))
            if guild is None:
                continue
            members = list(guild.members.values())
            if user_ids:
                members = [m for m in members if m.user_id in user_ids]
            elif query:
                members = [
                    m
                    for m in members
                    if self.state.user(m.user_id).username.lower().startswith(query.lower())
                ]
            if limit:
                members = members[:limit]
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [member_payload(self.state, m) for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                "presences": [],
            }
            if data.get("nonce") is not None:
                chunk["nonce"] = data["nonce"]
            connection.enqueue(OP_DISPATCH, chunk, "GUILD_MEMBERS_CHUNK")

    async def disconnect(self, bot_user_id: int, *, code: int, resumable: bool) -> int:
        connections = self.live_connections(bot_user_id)
        for connection in connections:
            connection.live = False
            if not resumable and connection.session is not None:
                self.sessions.pop(connection.session.session_id, None)
        self.state.changed()
        await asyncio.gather(*(c.close(code) for c in connections))
        return len(connections)

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(1001) for c in list(self.connections)))
