"""A local Discord API double (REST v10 + JSON gateway) for the real, unpatched discord.py.

In-process use::

    async with DiscordDouble() as double:                     # 127.0.0.1, free port
        discord.http.Route.BASE = double.api_base             # "http://127.0.0.1:P/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = double.gateway_url  # ws://.../gateway/
        guild = double.add_guild("Test", owner_id=alice.id)   # @everyone + #general
        bot = double.add_bot("token-1", "shipcord", guilds=[guild])
        ...
        record = await double.dispatch_command(bot, "deploy", {"app": "x"}, user=alice)
        await double.wait_for_interaction_reply(record.id)

Plain aiohttp clients use the same REST root with ``Authorization: Bot <token>``.
Every JSON answer has ``Content-Type: application/json`` (no charset).

Python API of :class:`DiscordDouble` (ids may be passed as ints or as records)::

    add_user(username, *, user_id=None, dms_closed=False) -> UserRecord
    add_bot(token, username="bot", *, guilds=(), privileged_intents=True) -> BotRecord
    add_guild(name="Test", owner_id=None, *, channels=("general",)) -> GuildRecord
    add_role(guild_id, name, permissions=0) -> RoleRecord
    add_member(guild_id, user_id, roles=(), nick=None) -> MemberRecord
    add_channel(guild_id, name, *, deny_bots=False, denied_user_ids=()) -> ChannelRecord
    message(id) / messages(channel_id) / last_message(channel_id) / dm_messages(user)
    interaction(id) / interaction_reply(id) / commands(bot, guild_id=None)
    requests / requests_matching(method, path_regex) / rate_limited_count /
    rate_limited_by_channel / bot_connected(bot)
    await wait_for(predicate, timeout=10, description=None)   # re-checked on every change
    await wait_for_bot_ready(bot) / wait_for_interaction_reply(id) /
          wait_for_message(channel_id, predicate, dm_user=None)
    await dispatch_command(bot, "cmd [group] [sub]", {option: value}, user=..., channel=...)
    await dispatch_autocomplete(bot, "cmd", {option: "partial"}, focused="option", user=...)
    await autocomplete(...) -> choices
    await dispatch_component(bot, message_id, custom_id, user=..., component_type=2, values=None)
    await dispatch_interaction(bot, kind=..., ...)   # the general form of the three above
    await dispatch_event(bot, "EVENT_NAME", data)
    await disconnect_bot(bot, code=4000, resumable=True)
    post_user_message(channel_id, user, content)     # bots get MESSAGE_CREATE
    inject_fault(method, path_regex, status=500, times=1, delay=0.0, body=None) / clear_faults()
    latency = 0.2                                    # seconds added to every REST call

Discord's published API: every REST request is checked against Discord's OpenAPI spec
(``spec/openapi.json``, vendored from discord/discord-api-spec; see :mod:`.validation`):
route and method, path parameters, query parameters and the JSON body or multipart
``payload_json`` (lengths such as ``custom_id`` <= 100, embed and component limits).
A request that breaks it is answered as Discord would (404, 405, or 400 50035 "Invalid
Form Body" with ``errors``) and recorded in ``double.violations``; leaving an ``async
with DiscordDouble()`` block with violations raises AssertionError (or adds a note to the
exception already on its way), and tests/conftest.py fails each test during which a
running double saw one. ``double.take_violations()`` takes them for tests that break the
spec on purpose; ``DiscordDouble(validate=False)`` (``--no-validate``) turns it off. The
double's own ``/_control`` API is not a Discord route and is not checked.

Records are mutable dataclasses (``user.dms_closed = True``, ``channel.deny_bots = True``).
``MessageRecord.versions`` is the edit history (``versions[0]`` is what was sent);
``InteractionRecord.responses`` lists callback/followup/edit/delete in order, with
``callback_type``, ``choices`` (autocomplete), ``reply_message_id`` and ``has_reply``.
The first followup after a "thinking" defer (type 5) fills the deferred message, as on
Discord.

Construction knobs: ``DiscordDouble(edit_limit=5, edit_window=5.0, send_limit=5,
send_window=5.0, webhook_limit=5, webhook_window=2.0, advertise_ratelimits=True,
heartbeat_interval_ms=41250, interaction_deadline=None, interaction_token_lifetime=900.0,
latency=0.0, validate=True)``. Buckets are modelled as Discord applies them: channel
message routes per channel (creates, POST /channels/{c}/messages, and edits, PATCH
/channels/{c}/messages/{m}, each their own fixed-window bucket per (bot, channel)), and
an interaction's webhook routes (followups, edits and deletes of its messages) per
interaction token, so that one interaction's edits never take from the channel's bucket
or from another interaction's. Over a limit: 429 with ``Via: 1.1 google`` and
``{"message", "retry_after", "global": false}``. With ``advertise_ratelimits`` discord.py
reads X-RateLimit-* and paces itself (few or no 429s); with False it cannot, so bursts
really hit 429s and are retried. An interaction's webhook answers 401 50027 once its
token is older than ``interaction_token_lifetime`` (15 minutes on Discord).

Standalone process::

    python -m tests.discord_double --port 0 --seed seed.json [--edit-limit N]
        [--edit-window S] [--send-limit N] [--send-window S] [--webhook-limit N]
        [--webhook-window S] [--no-ratelimit-headers] [--latency S]
        [--interaction-deadline S] [--interaction-token-lifetime S] [--no-validate]

prints one JSON line ``{"api_base", "gateway_url", "control_url", "base_url", "port",
"pid", "ids"}`` and serves until SIGTERM. The seed format and ``ids`` are documented in
:mod:`tests.discord_double.seed`; :class:`DoubleProcess` / :class:`ControlClient` in
:mod:`tests.discord_double.client` wrap starting it and calling the control API.

Control API (JSON in/out, snowflakes as strings; bots by user id, username or token;
users by id or username)::

    GET    /_control/state[?requests=0]   bots (connected, identify/resume counts), users,
                                          guilds, channels{id: {messages: [...]}} with every
                                          message's versions (edit history), dms{user_id: [...]},
                                          commands, interactions (responses, reply, choices),
                                          requests, rate_limited_count, rate_limited_by_channel
    POST   /_control/seed                 same format as the seed file -> ids
    POST   /_control/interactions         {"bot", "user", "kind": "command"|"autocomplete"|
                                          "component", "command", "options": {name: value},
                                          "focused", "custom_id", "message_id",
                                          "component_type", "values", "guild_id",
                                          "channel_id", "timeout"} -> interaction
    GET    /_control/interactions/{id}    -> interaction
    POST   /_control/wait                 {"kind": "bot_ready", "bot"}
                                          {"kind": "interaction_reply", "interaction_id"}
                                          {"kind": "message", "channel_id" | "dm_user",
                                           "contains", "author_id", "min_edits"}
                                          {"kind": "request", "method", "path_regex",
                                           "status", "count"}
                                          {"kind": "rate_limited", "count"}
                                          + "timeout" (s); 408 {"error"} on timeout
    POST   /_control/faults               {"method", "path_regex", "status", "times",
                                           "delay", "body"};  DELETE clears them
    PUT    /_control/latency              {"seconds"}
    POST   /_control/disconnect           {"bot", "code": 4000, "resumable": true}
    POST   /_control/messages             {"channel_id" | "bot", "author", "content"}: a user
                                          writes a message (bots get MESSAGE_CREATE)
    PATCH  /_control/users/{id}           {"dms_closed": true}
    PATCH  /_control/channels/{id}        {"deny_bots": true, "denied_user_ids": [...]}
    GET    /_control/violations           {"violations": [...], "report"}: requests that broke
                                          Discord's spec; DELETE returns and forgets them
                                          (DoubleProcess fails its block if any are left)

Errors: unknown token 401 ``{"message": "401: Unauthorized", "code": 0}``; unknown
channel 10003; unknown message 10008; denied channel 403 50013; closed DMs 403 50007;
second interaction callback 400 40060; late callback (``interaction_deadline``) 404 10062;
expired interaction token on its webhook 401 50027.
"""

from .client import ControlClient, DoubleProcess
from .faults import FaultRule
from .seed import apply_seed, load_seed
from .server import DiscordDouble
from .state import (
    BotRecord,
    ChannelRecord,
    GuildRecord,
    InteractionRecord,
    InteractionResponseRecord,
    MemberRecord,
    MessageRecord,
    MessageVersion,
    RequestRecord,
    RoleRecord,
    UserRecord,
)

__all__ = [
    "BotRecord",
    "ChannelRecord",
    "ControlClient",
    "DiscordDouble",
    "DoubleProcess",
    "FaultRule",
    "GuildRecord",
    "InteractionRecord",
    "InteractionResponseRecord",
    "MemberRecord",
    "MessageRecord",
    "MessageVersion",
    "RequestRecord",
    "RoleRecord",
    "UserRecord",
    "apply_seed",
    "load_seed",
]
