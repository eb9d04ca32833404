"""DiscordDouble: wires state, REST, gateway and control API into one aiohttp server."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import yarl
from aiohttp import web

from .api import ApiServer
from .commands import CommandHandlers, CommandStore
from .dispatch import KIND_TYPES, InteractionBuilder
from .faults import FaultRule
from .gateway import GatewayHub
from .interactions import InteractionHandlers
from .rest import RestConfig, RestHandlers
from .state import (
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    BotRecord,
    ChannelRecord,
    DoubleState,
    GuildRecord,
    InteractionRecord,
    MemberRecord,
    MessageRecord,
    RequestRecord,
    RoleRecord,
    UserRecord,
)
from .validation import Violation, spec_validator

T = TypeVar("T")
API_PREFIX = "/api/v10"


def _id(ref: Any) -> int:
    """An id from a record (``.id``), a bot record (``.user_id``), an int or a digit string."""
    if isinstance(ref, BotRecord):
        return ref.user_id
    if hasattr(ref, "id"):
        return int(ref.id)
    return int(ref)


class DiscordDouble:
    """A local Discord (REST + gateway) for the real discord.py client. See package docs."""

    running: weakref.WeakSet[DiscordDouble] = weakref.WeakSet()
    """Doubles started and not yet stopped (tests/conftest.py checks their violations
    after every test, so that a module-scoped double blames the test that broke the spec)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        edit_limit: int = 5,
        edit_window: float = 5.0,
        send_limit: int = 5,
        send_window: float = 5.0,
        webhook_limit: int = 5,
        webhook_window: float = 2.0,
        advertise_ratelimits: bool = True,
        heartbeat_interval_ms: int = 41250,
        interaction_deadline: float | None = None,
        interaction_token_lifetime: float = 900.0,
        latency: float = 0.0,
        validate: bool = True,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.state = DoubleState()
        self.api = ApiServer(self.state, prefix=API_PREFIX)
        self.api.latency = latency
        if validate:
            self.api.spec = spec_validator()
        self.config = RestConfig(
            edit_limit=edit_limit,
            edit_window=edit_window,
            send_limit=send_limit,
            send_window=send_window,
            webhook_limit=webhook_limit,
            webhook_window=webhook_window,
            advertise_ratelimits=advertise_ratelimits,
        )
        self.command_store = CommandStore(self.state)
        self.hub = GatewayHub(self.state, heartbeat_interval_ms=heartbeat_interval_ms)
        self.builder = InteractionBuilder(self.state, self.command_store)
        RestHandlers(self.state, self.api, self.config)
        CommandHandlers(self.state, self.api, self.command_store)
        InteractionHandlers(
            self.state,
            self.api,
            self.config,
            callback_deadline=interaction_deadline,
            token_lifetime=interaction_token_lifetime,
        )
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> DiscordDouble:
        from .control import ControlApi

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.api.handle)
        app.router.add_get("/gateway/", self.hub.handle)
        app.router.add_get("/gateway", self.hub.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{name}", self._attachment)
        ControlApi(self).register(app)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        # No access log: Discord's own work is not on this machine, nor in a benchmark's CPU.
        self._runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self.config.base_url = self.base_url
        self.config.gateway_url = str(self.gateway_url)
        self.hub.gateway_url = str(self.gateway_url)
        DiscordDouble.running.add(self)
        return self

    async def stop(self) -> None:
        DiscordDouble.running.discard(self)
        if self._runner is None:
            return
        await self.hub.close_all()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> DiscordDouble:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        await self.stop()
        report = self.violation_report()
        if report is None:
            return
        if exc is not None:
            exc.add_note(report)  # the test already fails; say what broke the spec too
            return
        raise AssertionError(report)

    # -- Discord's spec ----------------------------------------------------------

    @property
    def violations(self) -> list[Violation]:
        """Requests that broke Discord's OpenAPI spec (each was answered 400/404/405)."""
        return self.state.violations

    def take_violations(self) -> list[Violation]:
        """The violations so far, forgotten: for tests that break the spec on purpose."""
        taken = list(self.state.violations)
        self.state.violations.clear()
        return taken

    def violation_report(self) -> str | None:
        """None when every request fit the spec; else one line per violation."""
        if not self.state.violations:
            return None
        lines = "\n".join(f"  {v}" for v in self.state.violations)
        return (
            f"DiscordDouble: {len(self.state.violations)} request(s) broke Discord's "
            f"OpenAPI spec (tests/discord_double/spec/openapi.json):\n{lines}"
        )

    def assert_no_violations(self) -> None:
        """Fail (AssertionError) if any request broke the spec; for fixtures' teardown."""
        report = self.violation_report()
        if report is not None:
            raise AssertionError(report)

    # -- addresses ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """REST root; assign to ``discord.http.Route.BASE``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> yarl.URL:
        """Assign to ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``."""
        return yarl.URL(f"ws://{self.host}:{self.port}/gateway/")

    @property
    def control_url(self) -> str:
        return self.base_url + "/_control"

    # -- knobs -------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added to every REST request."""
        return self.api.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self.api.latency = value

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        status: int | None = 500,
        times: int | None = 1,
        delay: float = 0.0,
        body: Any = None,
    ) -> FaultRule:
        """Answer the next ``times`` matching REST requests with ``status``/``body``.

        ``path_regex`` is searched in the path below the API root
        (``/channels/123/messages/456``); ``method`` may be "*"; ``status=None`` only delays.
        """
        rule = self.api.faults.add(FaultRule(method, path_regex, status, times, delay, body))
        self.state.changed()
        return rule

    def clear_faults(self) -> None:
        self.api.faults.clear()

    # -- entities ------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        user_id: int | None = None,
        dms_closed: bool = False,
        global_name: str | None = None,
    ) -> UserRecord:
        return self.state.add_user(
            username, user_id=user_id, dms_closed=dms_closed, global_name=global_name
        )

    def add_bot(
        self,
        token: str,
        username: str = "bot",
        *,
        guilds: Iterable[Any] = (),
        user_id: int | None = None,
        application_name: str | None = None,
        owner_id: int | None = None,
        privileged_intents: bool = True,
    ) -> BotRecord:
        """A bot user + application (application_id == user_id), joined to ``guilds``."""
        bot = self.state.add_bot(
            token,
            username,
            user_id=user_id,
            application_name=application_name,
            owner_id=owner_id,
            privileged_intents=privileged_intents,
        )
        for guild in guilds:
            self.add_member(_id(guild), bot.user_id)
        return bot

    def add_guild(
        self,
        name: str = "Test",
        owner_id: int | None = None,
        *,
        channels: Iterable[str] = ("general",),
        everyone_permissions: int | None = None,
        guild_id: int | None = None,
    ) -> GuildRecord:
        """A guild with an @everyone role (id == guild id) and text channels ``channels``.

        Without ``owner_id`` an owner user is created; the owner becomes a member.
        """
        return self.state.add_guild(
            name,
            owner_id=owner_id,
            guild_id=guild_id,
            channels=channels,
            everyone_permissions=everyone_permissions,
        )

    def add_role(self, guild_id: Any, name: str, permissions: int = 0, **fields: Any) -> RoleRecord:
        return self.state.add_role(_id(guild_id), name, permissions=permissions, **fields)

    def add_member(
        self,
        guild_id: Any,
        user_id: Any,
        roles: Iterable[Any] = (),
        nick: str | None = None,
    ) -> MemberRecord:
        return self.state.add_member(
            _id(guild_id), _id(user_id), roles=[_id(r) for r in roles], nick=nick
        )

    def add_channel(
        self,
        guild_id: Any,
        name: str,
        *,
        deny_bots: bool = False,
        denied_user_ids: Iterable[int] = (),
        topic: str | None = None,
        type: int = 0,
        overwrites: Iterable[dict[str, Any]] = (),
    ) -> ChannelRecord:
        """A text channel; ``deny_bots`` makes every bot's send/edit fail with 403 50013."""
        return self.state.add_channel(
            _id(guild_id),
            name,
            type=type,
            topic=topic,
            deny_bots=deny_bots,
            denied_user_ids=denied_user_ids,
            overwrites=overwrites,
        )

    # -- reading state ---------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        return self.state.requests

    @property
    def rate_limited_count(self) -> int:
        return self.state.rate_limited_count

    @property
    def rate_limited_by_channel(self) -> dict[int, int]:
        return self.state.rate_limited_by_channel

    def requests_matching(
        self, method: str | None = None, path_regex: str | None = None
    ) -> list[RequestRecord]:
        pattern = re.compile(path_regex) if path_regex else None
        return [
            r
            for r in self.state.requests
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path))
        ]

    def message(self, message_id: Any) -> MessageRecord:
        return self.state.message(_id(message_id))

    def messages(self, channel_id: Any, *, include_deleted: bool = False) -> list[MessageRecord]:
        return self.state.channel_messages(_id(channel_id), include_deleted=include_deleted)

    def last_message(self, channel_id: Any) -> MessageRecord | None:
        found = self.messages(channel_id)
        return found[-1] if found else None

    def dm_channel(self, bot: Any, user: Any) -> ChannelRecord:
        return self.state.dm_channel(self.state.bot(bot).user_id, self.state.resolve_user_id(user))

    def dm_messages(self, user: Any, bot: Any | None = None) -> list[MessageRecord]:
        """Messages in DM channels with ``user`` (of one bot, or of all bots)."""
        user_id = self.state.resolve_user_id(user)
        bot_ids = [self.state.bot(bot).user_id] if bot is not None else list(self.state.bots)
        result: list[MessageRecord] = []
        for bot_id in bot_ids:
            channel_id = self.state.dm_channels.get((bot_id, user_id))
            if channel_id is not None:
                result.extend(self.state.channel_messages(channel_id))
        return sorted(result, key=lambda m: m.id)

    def interaction(self, interaction_id: Any) -> InteractionRecord:
        return self.state.interactions[_id(interaction_id)]

    def interaction_reply(self, interaction_id: Any) -> MessageRecord | None:
        """The message the user currently sees as the answer (latest followup or original)."""
        message_id = self.interaction(interaction_id).reply_message_id
        return None if message_id is None else self.state.messages.get(message_id)

    def commands(self, bot: Any, guild_id: Any | None = None) -> list[dict[str, Any]]:
        app_id = self.state.bot(bot).application_id
        guild = None if guild_id is None else _id(guild_id)
        return list(self.command_store.table(app_id, guild).values())

    def bot(self, ref: Any) -> BotRecord:
        return self.state.bot(ref)

    def bot_connected(self, bot: Any) -> bool:
        """True while the bot has a gateway connection that got READY (and its guilds)."""
        return self.hub.latest_connection(self.state.bot(bot).user_id) is not None

    # -- waiting -----------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 10.0,
        description: str | None = None,
    ) -> T:
        """Re-evaluate ``predicate`` on every state change until it is truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.state.change_event()
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(self._timeout_message(predicate, timeout, description))
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    def _timeout_message(self, predicate: Any, timeout: float, description: str | None) -> str:
        what = description or getattr(predicate, "__qualname__", repr(predicate))
        recent = ", ".join(f"{r.method} {r.path} -> {r.status}" for r in self.state.requests[-8:])
        connected = [b.username for b in self.state.bots.values() if self.bot_connected(b)]
        message = (
            f"DiscordDouble: timed out after {timeout}s waiting for {what}. "
            f"Connected bots: {connected or 'none'}. Last requests: [{recent}]"
        )
        report = self.violation_report()
        return message if report is None else f"{message}\n{report}"

    async def wait_for_bot_ready(self, bot: Any, timeout: float = 10.0) -> BotRecord:
        record = self.state.bot(bot)
        await self.wait_for(
            lambda: self.bot_connected(record),
            timeout,
            f"bot {record.username!r} to be connected (READY + GUILD_CREATEs sent)",
        )
        return record

    async def wait_for_interaction_reply(
        self, interaction_id: Any, timeout: float = 10.0
    ) -> InteractionRecord:
        """Wait until the interaction has a visible answer (a defer alone does not count)."""
        record = self.interaction(interaction_id)
        label = record.data.get("name") or record.data.get("custom_id")
        await self.wait_for(
            lambda: record.has_reply, timeout, f"a reply to interaction {record.id} ({label})"
        )
        return record

    async def wait_for_message(
        self,
        channel_id: Any | None = None,
        predicate: Callable[[MessageRecord], bool] | None = None,
        *,
        dm_user: Any | None = None,
        timeout: float = 10.0,
    ) -> MessageRecord:
        """First live message (in a channel, or in DMs with ``dm_user``) matching ``predicate``."""

        def candidates() -> list[MessageRecord]:
            if dm_user is not None:
                return self.dm_messages(dm_user)
            if channel_id is not None:
                return self.messages(channel_id)
            return [m for m in self.state.messages.values() if not m.deleted]

        def find() -> MessageRecord | None:
            return next((m for m in candidates() if predicate is None or predicate(m)), None)

        where = f"DMs with {dm_user}" if dm_user is not None else f"channel {channel_id}"
        found = await self.wait_for(find, timeout, f"a matching message in {where}")
        assert found is not None
        return found

    # -- gateway ------------------------------------------------------------------------

    async def dispatch_interaction(
        self,
        bot: Any,
        *,
        user: Any,
        kind: str | int = "command",
        command: str | None = None,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        focused: str | None = None,
        custom_id: str | None = None,
        message: Any | None = None,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        guild: Any | None = None,
        channel: Any | None = None,
        locale: str = "en-US",
        connect_timeout: float = 10.0,
    ) -> InteractionRecord:
        """Send INTERACTION_CREATE to ``bot``'s live gateway connection.

        kind: "command" (slash command ``command`` with ``options``), "autocomplete"
        (``focused`` names the option being typed) or "component" (click on ``custom_id``
        of stored ``message``). Waits up to ``connect_timeout`` for the bot to be online.
        """
        record_bot = self.state.bot(bot)
        user_id = self.state.resolve_user_id(user)
        interaction_type = KIND_TYPES[kind] if isinstance(kind, str) else int(kind)
        message_id: int | None = None
        if interaction_type == INTERACTION_COMPONENT:
            if custom_id is None or message is None:
                raise ValueError("a component interaction needs custom_id and message")
            message_id = _id(message)
            stored = self.state.message(message_id)
            channel = channel if channel is not None else stored.channel_id
            data = self.builder.component_data(custom_id, component_type, values)
        else:
            if command is None:
                raise ValueError("a command/autocomplete interaction needs command")
            if interaction_type == INTERACTION_AUTOCOMPLETE and focused is None:
                raise ValueError("an autocomplete interaction needs focused=<option name>")
        guild_id, channel_record = self.builder.resolve_context(
            record_bot,
            user_id,
            None if guild is None else _id(guild),
            None if channel is None else _id(channel),
        )
        if interaction_type != INTERACTION_COMPONENT:
            assert command is not None
            data = self.builder.command_data(
                record_bot, command, options, guild_id=guild_id, focused=focused
            )
        record = self.builder.build(
            record_bot,
            interaction_type=interaction_type,
            user_id=user_id,
            guild_id=guild_id,
            channel=channel_record,
            data=data,
            message_id=message_id,
            locale=locale,
        )
        await self.wait_for_bot_ready(record_bot, timeout=connect_timeout)
        record.dispatched_at = time.monotonic()
        sent = self.hub.dispatch(record_bot.user_id, "INTERACTION_CREATE", record.payload)
        if sent is None:
            raise ConnectionError(f"bot {record_bot.username!r} went offline")
        await sent
        return record

    async def dispatch_command(
        self,
        bot: Any,
        command: str,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        user: Any,
        **kwargs: Any,
    ) -> InteractionRecord:
        return await self.dispatch_interaction(
            bot, user=user, kind="command", command=command, options=options, **kwargs
        )

    async def dispatch_autocomplete(
        self,
        bot: Any,
        command: str,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        focused: str,
        user: Any,
        **kwargs: Any,
    ) -> InteractionRecord:
        return await self.dispatch_interaction(
            bot,
            user=user,
            kind="autocomplete",
            command=command,
            options=options,
            focused=focused,
            **kwargs,
        )

    async def dispatch_component(
        self,
        bot: Any,
        message: Any,
        custom_id: str,
        *,
        user: Any,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> InteractionRecord:
        return await self.dispatch_interaction(
            bot,
            user=user,
            kind="component",
            message=message,
            custom_id=custom_id,
            component_type=component_type,
            values=values,
            **kwargs,
        )

    async def autocomplete(
        self,
        bot: Any,
        command: str,
        options: Mapping[str, Any],
        *,
        focused: str,
        user: Any,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Dispatch an autocomplete and return the choices the bot answered with."""
        record = await self.dispatch_autocomplete(
            bot, command, options, focused=focused, user=user, **kwargs
        )
        await self.wait_for_interaction_reply(record.id, timeout)
        return record.choices or []

    async def dispatch_event(self, bot: Any, event: str, data: Any) -> None:
        """Send an arbitrary dispatch (e.g. GUILD_MEMBER_UPDATE) to a connected bot."""
        record = self.state.bot(bot)
        await self.wait_for_bot_ready(record)
        sent = self.hub.dispatch(record.user_id, event, data)
        if sent is not None:
            await sent

    async def disconnect_bot(self, bot: Any, *, code: int = 4000, resumable: bool = True) -> int:
        """Close the bot's live gateway connections (a network drop). discord.py reconnects:
        RESUME succeeds when ``resumable``, otherwise it gets op 9 and re-IDENTIFYs."""
        return await self.hub.disconnect(
            self.state.bot(bot).user_id, code=code, resumable=resumable
        )

    def post_user_message(
        self, channel_id: Any, user: Any, content: str, **fields: Any
    ) -> MessageRecord:
        """A message written by a (non-bot) user; connected bots get MESSAGE_CREATE."""
        return self.state.create_message(
            _id(channel_id), self.state.resolve_user_id(user), content=content, **fields
        )

    # -- attachments -----------------------------------------------------------------

    async def _attachment(self, request: web.Request) -> web.Response:
        for message in self.state.messages.values():
            blob = message.files.get(request.match_info["attachment_id"])
            if blob is not None:
                return web.Response(body=blob)
        raise web.HTTPNotFound()
