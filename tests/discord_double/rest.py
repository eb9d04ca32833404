"""REST handlers: identity, gateway discovery, users/DMs, guilds, channels and messages."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from .api import ApiError, ApiRequest, ApiResult, ApiServer
from .messages import message_fields
from .payloads import (
    application_payload,
    channel_payload,
    guild_payload,
    member_payload,
    message_payload,
    role_payload,
    self_user_payload,
    user_payload,
)
from .permissions import SEND_MESSAGES, VIEW_CHANNEL, base_permissions, channel_permissions
from .ratelimit import Decision, FixedWindowLimiter
from .state import CHANNEL_DM, BotRecord, ChannelRecord, DoubleState, MessageRecord

EDIT_BUCKET = "d0ub1e0ed17"
SEND_BUCKET = "d0ub1e05e4d"
WEBHOOK_BUCKET = "d0ub1ew3bh00c"


@dataclass
class RestConfig:
    """Rate limits as Discord applies them to a bot: message creates and message edits
    each have a bucket per channel (5 per 5 s); an interaction's webhook (followups,
    edits and deletes of its messages) has a bucket per interaction token (5 per 2 s),
    shared by nothing else."""

    edit_limit: int = 5
    edit_window: float = 5.0
    send_limit: int = 5
    send_window: float = 5.0
    webhook_limit: int = 5
    webhook_window: float = 2.0
    advertise_ratelimits: bool = True
    """Send X-RateLimit-* headers (discord.py then paces itself and rarely sees a 429)."""
    base_url: str = ""
    gateway_url: str = ""
    limiters: dict[str, FixedWindowLimiter] = field(default_factory=dict)

    def limiter(self, name: str) -> FixedWindowLimiter:
        if name not in self.limiters:
            limit, window, bucket = {
                "edit": (self.edit_limit, self.edit_window, EDIT_BUCKET),
                "send": (self.send_limit, self.send_window, SEND_BUCKET),
                "webhook": (self.webhook_limit, self.webhook_window, WEBHOOK_BUCKET),
            }[name]
            self.limiters[name] = FixedWindowLimiter(limit, window, bucket)
        return self.limiters[name]

    def take(self, name: str, key: Hashable) -> dict[str, str]:
        """Count one request against bucket `name` of `key`: its headers, or a 429."""
        limiter = self.limiter(name)
        decision = limiter.hit(key)
        headers = decision.headers(limiter.bucket_hash) if self.advertise_ratelimits else {}
        if not decision.allowed:
            raise rate_limited(decision, headers)
        return headers


def rate_limited(decision: Decision, headers: dict[str, str]) -> ApiError:
    """Discord's 429 for a per-route bucket (the Via header tells it from a proxy's)."""
    retry_after = max(decision.reset_after, 0.001)
    return ApiError(
        429,
        0,
        "You are being rate limited.",
        headers={
            **headers,
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after + 0.5))),
            "X-RateLimit-Scope": "user",
        },
        body={
            "message": "You are being rate limited.",
            "retry_after": math.ceil(retry_after * 1000) / 1000,
            "global": False,
        },
    )


def unknown_channel() -> ApiError:
    return ApiError(404, 10003, "Unknown Channel")


def unknown_message() -> ApiError:
    return ApiError(404, 10008, "Unknown Message")


def missing_access() -> ApiError:
    return ApiError(403, 50001, "Missing Access")


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")


class RestHandlers:
    def __init__(self, state: DoubleState, api: ApiServer, config: RestConfig) -> None:
        self.state = state
        self.config = config
        r = api.router
        r.add("GET", "/gateway", self.get_gateway, auth=False)
        r.add("GET", "/gateway/bot", self.get_gateway_bot)
        r.add("GET", "/users/@me", self.get_me)
        r.add("GET", "/users/@me/guilds", self.get_my_guilds)
        r.add("DELETE", "/users/@me/guilds/{guild_id}", self.leave_guild)
        r.add("POST", "/users/@me/channels", self.create_dm)
        r.add("GET", "/users/{user_id}", self.get_user)
        r.add("GET", "/oauth2/applications/@me", self.get_application)
        r.add("GET", "/applications/@me", self.get_application)
        r.add("GET", "/guilds/{guild_id}", self.get_guild)
        r.add("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r.add("GET", "/guilds/{guild_id}/roles", self.get_guild_roles)
        r.add("GET", "/guilds/{guild_id}/members", self.list_members)
        r.add("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)
        r.add("GET", "/channels/{channel_id}", self.get_channel)
        r.add("POST", "/channels/{channel_id}/typing", self.typing)
        r.add("GET", "/channels/{channel_id}/messages", self.list_messages)
        r.add("POST", "/channels/{channel_id}/messages", self.create_message)
        r.add("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r.add("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r.add("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        reaction = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"
        r.add("PUT", reaction, self.add_reaction)
        r.add("DELETE", reaction, self.add_reaction)

    # -- identity / discovery -----------------------------------------

    async def get_gateway(self, req: ApiRequest) -> ApiResult:
        return ApiResult({"url": self.config.gateway_url})

    async def get_gateway_bot(self, req: ApiRequest) -> ApiResult:
        return ApiResult(
            {
                "url": self.config.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def get_me(self, req: ApiRequest) -> ApiResult:
        return ApiResult(self_user_payload(req.require_bot().user))

    async def get_application(self, req: ApiRequest) -> ApiResult:
        return ApiResult(application_payload(self.state, req.require_bot()))

    async def get_my_guilds(self, req: ApiRequest) -> ApiResult:
        bot = req.require_bot()
        return ApiResult(
            [
                {
                    "id": str(g.id),
                    "name": g.name,
                    "icon": None,
                    "owner": g.owner_id == bot.user_id,
                    "permissions": str(base_permissions(self.state, g.id, bot.user_id)),
                    "features": list(g.features),
                }
                for g in self.state.guilds_of(bot.user_id)
            ]
        )

    async def leave_guild(self, req: ApiRequest) -> ApiResult:
        """The bot leaves a server: it is no longer a member (Discord then sends GUILD_DELETE,
        which discord.py does not need for the call to succeed)."""
        bot = req.require_bot()
        guild = self._guild_for(req)
        guild.members.pop(bot.user_id, None)
        self.state.changed()
        return ApiResult(status=204)

    async def get_user(self, req: ApiRequest) -> ApiResult:
        user = self.state.users.get(req.param("user_id"))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return ApiResult(user_payload(user))

    async def create_dm(self, req: ApiRequest) -> ApiResult:
        bot = req.require_bot()
        raw = req.json_object().get("recipient_id")
        user = self.state.users.get(int(raw)) if raw is not None and str(raw).isdigit() else None
        if user is None:
            raise ApiError(400, 50033, "Invalid Recipient(s)")
        channel = self.state.dm_channel(bot.user_id, user.id)
        return ApiResult(channel_payload(self.state, channel))

    # -- guilds ----------------------------------------------------------

    def _guild_for(self, req: ApiRequest) -> Any:
        bot = req.require_bot()
        guild = self.state.guilds.get(req.param("guild_id"))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        if bot.user_id not in guild.members:
            raise missing_access()
        return guild

    async def get_guild(self, req: ApiRequest) -> ApiResult:
        guild = self._guild_for(req)
        payload = guild_payload(self.state, guild)
        if req.query.get("with_counts") in ("1", "true", "True"):
            payload["approximate_member_count"] = len(guild.members)
            payload["approximate_presence_count"] = 0
        return ApiResult(payload)

    async def get_guild_channels(self, req: ApiRequest) -> ApiResult:
        guild = self._guild_for(req)
        return ApiResult(
            [channel_payload(self.state, self.state.channels[c]) for c in guild.channel_ids]
        )

    async def get_guild_roles(self, req: ApiRequest) -> ApiResult:
        guild = self._guild_for(req)
        return ApiResult([role_payload(self.state.roles[r]) for r in guild.role_ids])

    async def list_members(self, req: ApiRequest) -> ApiResult:
        guild = self._guild_for(req)
        limit = int(req.query.get("limit", "1"))
        after = int(req.query.get("after", "0"))
        members = sorted(guild.members.values(), key=lambda m: m.user_id)
        members = [m for m in members if m.user_id > after][:limit]
        return ApiResult([member_payload(self.state, m) for m in members])

    async def get_member(self, req: ApiRequest) -> ApiResult:
        guild = self._guild_for(req)
        member = guild.members.get(req.param("user_id"))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return ApiResult(member_payload(self.state, member))

    # -- channels --------------------------------------------------------

    def visible_channel(self, req: ApiRequest) -> tuple[BotRecord, ChannelRecord]:
        bot = req.require_bot()
        channel = self.state.channels.get(req.param("channel_id"))
        if channel is None:
            raise unknown_channel()
        if channel.type == CHANNEL_DM:
            if bot.user_id not in channel.recipient_ids:
                raise missing_access()
        else:
            guild = self.state.guilds.get(channel.guild_id or 0)
            if guild is None or bot.user_id not in guild.members:
                raise missing_access()
            if not channel_permissions(self.state, channel, bot.user_id) & VIEW_CHANNEL:
                raise missing_access()
        return bot, channel

    def writable_channel(self, req: ApiRequest) -> tuple[BotRecord, ChannelRecord]:
        bot, channel = self.visible_channel(req)
        if channel.type == CHANNEL_DM:
            recipient = self.state.user(channel.recipient_ids[1])
            if recipient.dms_closed:
                raise ApiError(403, 50007, "Cannot send messages to this user")
            return bot, channel
        if channel.denies(bot.user_id, is_bot=True):
            raise missing_permissions()
        if not channel_permissions(self.state, channel, bot.user_id) & SEND_MESSAGES:
            raise missing_permissions()
        return bot, channel

    def channel_message(self, req: ApiRequest, channel: ChannelRecord) -> MessageRecord:
        message = self.state.messages.get(req.param("message_id"))
        if message is None or message.deleted or message.ephemeral:
            raise unknown_message()
        if message.channel_id != channel.id:
            raise unknown_message()
        return message

    async def get_channel(self, req: ApiRequest) -> ApiResult:
        _, channel = self.visible_channel(req)
        return ApiResult(channel_payload(self.state, channel))

    async def typing(self, req: ApiRequest) -> ApiResult:
        self.writable_channel(req)
        return ApiResult(status=204)

    async def add_reaction(self, req: ApiRequest) -> ApiResult:
        _, channel = self.visible_channel(req)
        self.channel_message(req, channel)
        return ApiResult(status=204)

    async def list_messages(self, req: ApiRequest) -> ApiResult:
        _, channel = self.visible_channel(req)
        limit = max(1, min(100, int(req.query.get("limit", "50"))))
        messages = [m for m in self.state.channel_messages(channel.id) if not m.ephemeral]
        if "before" in req.query:
            messages = [m for m in messages if m.id < int(req.query["before"])]
        if "after" in req.query:
            after = int(req.query["after"])
            messages = [m for m in messages if m.id > after][:limit]
        messages = sorted(messages, key=lambda m: m.id, reverse=True)[:limit]
        return ApiResult([message_payload(self.state, m) for m in messages])

    async def get_message(self, req: ApiRequest) -> ApiResult:
        _, channel = self.visible_channel(req)
        return ApiResult(message_payload(self.state, self.channel_message(req, channel)))

    def _limit(self, name: str, bot: BotRecord, channel: ChannelRecord) -> dict[str, str]:
        return self.config.take(name, (bot.user_id, channel.id))

    async def create_message(self, req: ApiRequest) -> ApiResult:
        bot, channel = self.writable_channel(req)
        headers = self._limit("send", bot, channel)
        fields = message_fields(
            self.state,
            req.json_object(),
            req.files,
            base_url=self.config.base_url,
            channel_id=channel.id,
        )
        fields["flags"] = fields.get("flags", 0) & ~(1 << 6)  # no ephemeral outside interactions
        body = req.json_object()
        if body.get("enforce_nonce") and body.get("nonce") is not None:
            # As Discord does (for a few minutes): the same nonce from the same author in
            # the same channel answers with the message already created.
            for earlier in self.state.channel_messages(channel.id):
                if earlier.author_id == bot.user_id and earlier.nonce == body["nonce"]:
                    return ApiResult(message_payload(self.state, earlier), headers=headers)
        message = self.state.create_message(channel.id, bot.user_id, **fields)
        return ApiResult(message_payload(self.state, message), headers=headers)

    async def edit_message(self, req: ApiRequest) -> ApiResult:
        bot, channel = self.visible_channel(req)
        message = self.channel_message(req, channel)
        if message.author_id != bot.user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        if channel.type != CHANNEL_DM and channel.denies(bot.user_id, is_bot=True):
            raise missing_permissions()
        headers = self._limit("edit", bot, channel)
        changes = message_fields(
            self.state,
            req.json_object(),
            req.files,
            base_url=self.config.base_url,
            channel_id=channel.id,
            existing=message,
        )
        self.state.edit_message(message, changes)
        return ApiResult(message_payload(self.state, message), headers=headers)

    async def delete_message(self, req: ApiRequest) -> ApiResult:
        bot, channel = self.visible_channel(req)
        message = self.channel_message(req, channel)
        if message.author_id != bot.user_id and channel.type == CHANNEL_DM:
            raise ApiError(403, 50003, "Cannot execute action on a DM channel")
        self.state.delete_message(message)
        return ApiResult(status=204)
