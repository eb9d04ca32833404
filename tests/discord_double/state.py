"""In-memory model of the fake Discord: users, bots, guilds, channels, messages, interactions.

Records are plain mutable dataclasses; tests may read them and flip flags on them
(``user.dms_closed = True``, ``channel.deny_bots = True``). Every mutation that goes
through :class:`DoubleState` calls :meth:`DoubleState.changed`, which wakes waiters.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .validation import Violation

DISCORD_EPOCH_MS = 1420070400000

CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_VOICE = 2
CHANNEL_CATEGORY = 4

INTERACTION_PING = 1
INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5

MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7


def utcnow() -> datetime:
    return datetime.now(UTC)


class SnowflakeGenerator:
    """Real-looking snowflakes: timestamp in the top bits, strictly increasing."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        value = max(value, self._last + 1)
        self._last = value
        return value


@dataclass
class UserRecord:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    dms_closed: bool = False
    """Sending to this user's DM channel answers 403 code 50007."""


@dataclass
class BotRecord:
    user: UserRecord
    token: str
    application_id: int
    application_name: str
    owner_id: int
    privileged_intents: bool = True
    """When False, IDENTIFY with members/presences/message_content intents is closed with 4014."""
    identify_count: int = 0
    resume_count: int = 0

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def username(self) -> str:
        return self.user.username


@dataclass
class RoleRecord:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False


@dataclass
class MemberRecord:
    guild_id: int
    user_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: datetime = field(default_factory=utcnow)


@dataclass
class ChannelRecord:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None
    nsfw: bool = False
    overwrites: list[dict[str, Any]] = field(default_factory=list)
    """Raw permission overwrites: {"id", "type" (0 role, 1 member), "allow", "deny"}."""
    deny_bots: bool = False
    """Every bot gets 403 code 50013 on send/edit here (and sees a matching overwrite)."""
    denied_user_ids: set[int] = field(default_factory=set)
    recipient_ids: list[int] = field(default_factory=list)
    """DM channels: [bot user id, user id]."""
    message_ids: list[int] = field(default_factory=list)

    def denies(self, user_id: int, *, is_bot: bool) -> bool:
        return user_id in self.denied_user_ids or (is_bot and self.deny_bots)


@dataclass
class GuildRecord:
    id: int
    name: str
    owner_id: int
    channel_ids: list[int] = field(default_factory=list)
    role_ids: list[int] = field(default_factory=list)
    members: dict[int, MemberRecord] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)

    @property
    def everyone_role_id(self) -> int:
        return self.id

    @property
    def default_channel_id(self) -> int | None:
        return self.channel_ids[0] if self.channel_ids else None


@dataclass
class MessageVersion:
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    flags: int
    attachments: list[dict[str, Any]]
    at: datetime


@dataclass
class MessageRecord:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    message_reference: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    tts: bool = False
    nonce: str | int | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    edited_at: datetime | None = None
    deleted: bool = False
    versions: list[MessageVersion] = field(default_factory=list)
    """Snapshot after creation and after every edit (versions[0] is the original)."""

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & MESSAGE_FLAG_LOADING)

    @property
    def edit_count(self) -> int:
        return max(0, len(self.versions) - 1)

    def snapshot(self) -> None:
        self.versions.append(
            MessageVersion(
                content=self.content,
                embeds=list(self.embeds),
                components=list(self.components),
                flags=self.flags,
                attachments=list(self.attachments),
                at=utcnow(),
            )
        )

    def text(self) -> str:
        """Content plus embed titles/descriptions/fields, for loose assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts.extend(str(embed.get(key) or "") for key in ("title", "description"))
            for embed_field in embed.get("fields") or []:
                parts.append(f"{embed_field.get('name', '')}: {embed_field.get('value', '')}")
            footer = embed.get("footer") or {}
            parts.append(str(footer.get("text") or ""))
        return "\n".join(part for part in parts if part)


@dataclass
class InteractionResponseRecord:
    kind: str
    """callback | followup | edit_original | delete_original | edit_followup | delete_followup"""
    type: int | None
    data: dict[str, Any] | None
    message_id: int | None
    at: datetime = field(default_factory=utcnow)


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int
    bot_user_id: int
    application_id: int
    user_id: int
    guild_id: int | None
    channel_id: int
    data: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)
    dispatched_at: float = field(default_factory=time.monotonic)
    callback_type: int | None = None
    callback_data: dict[str, Any] | None = None
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)
    responses: list[InteractionResponseRecord] = field(default_factory=list)
    component_message_id: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None

    @property
    def deferred(self) -> bool:
        return self.callback_type in (5, 6)

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """Autocomplete choices (callback type 8)."""
        if self.callback_type != 8 or self.callback_data is None:
            return None
        return list(self.callback_data.get("choices") or [])

    @property
    def has_reply(self) -> bool:
        """True once the user would see an answer (not just a defer)."""
        if self.callback_type in (4, 7, 8, 9):
            return True
        if self.callback_type in (5, 6):
            return any(r.kind != "callback" for r in self.responses)
        return False

    @property
    def reply_message_id(self) -> int | None:
        """Most recently created/edited message among the original and the followups."""
        for response in reversed(self.responses):
            if response.message_id is not None and response.kind not in (
                "delete_original",
                "delete_followup",
            ):
                return response.message_id
        return self.original_message_id


@dataclass
class RequestRecord:
    method: str
    path: str
    """Path below the API root, e.g. ``/channels/123/messages``."""
    query: dict[str, str]
    json: Any
    bot_user_id: int | None
    status: int
    at: float
    headers: dict[str, str] = field(default_factory=dict)


class DoubleState:
    """All entities plus a change signal. Single event loop, no locking needed."""

    def __init__(self) -> None:
        self.snowflake = SnowflakeGenerator()
        self.users: dict[int, UserRecord] = {}
        self.bots: dict[int, BotRecord] = {}
        self.bots_by_token: dict[str, BotRecord] = {}
        self.guilds: dict[int, GuildRecord] = {}
        self.roles: dict[int, RoleRecord] = {}
        self.channels: dict[int, ChannelRecord] = {}
        self.messages: dict[int, MessageRecord] = {}
        self.dm_channels: dict[tuple[int, int], int] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.interactions_by_token: dict[str, InteractionRecord] = {}
        self.global_commands: dict[int, dict[int, dict[str, Any]]] = {}
        self.guild_commands: dict[tuple[int, int], dict[int, dict[str, Any]]] = {}
        self.requests: list[RequestRecord] = []
        self.violations: list[Violation] = []
        """Requests that broke Discord's OpenAPI spec (see :mod:`.validation`)."""
        self.rate_limited_count = 0
        self.rate_limited_by_channel: dict[int, int] = {}
        self.message_listeners: list[Callable[[str, MessageRecord], None]] = []
        self._change: asyncio.Event | None = None
        self.version = 0

    # -- change signal -------------------------------------------------

    def changed(self) -> None:
        self.version += 1
        if self._change is not None:
            self._change.set()
            self._change = None

    def change_event(self) -> asyncio.Event:
        if self._change is None:
            self._change = asyncio.Event()
        return self._change

    # -- entities ------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        user_id: int | None = None,
        bot: bool = False,
        global_name: str | None = None,
        dms_closed: bool = False,
    ) -> UserRecord:
        user = UserRecord(
            id=user_id or self.snowflake(),
            username=username,
            global_name=global_name,
            bot=bot,
            dms_closed=dms_closed,
        )
        self.users[user.id] = user
        self.changed()
        return user

    def add_bot(
        self,
        token: str,
        username: str,
        *,
        user_id: int | None = None,
        application_name: str | None = None,
        owner_id: int | None = None,
        privileged_intents: bool = True,
    ) -> BotRecord:
        if token in self.bots_by_token:
            raise ValueError(f"a bot with this token already exists: {username!r}")
        user = self.add_user(username, user_id=user_id, bot=True)
        if owner_id is None:
            owner_id = self.add_user(f"{username}-owner").id
        bot = BotRecord(
            user=user,
            token=token,
            application_id=user.id,
            application_name=application_name or username,
            owner_id=owner_id,
            privileged_intents=privileged_intents,
        )
        self.bots[user.id] = bot
        self.bots_by_token[token] = bot
        self.changed()
        return bot

    def add_guild(
        self,
        name: str,
        *,
        owner_id: int | None = None,
        guild_id: int | None = None,
        channels: Iterable[str] = ("general",),
        everyone_permissions: int | None = None,
    ) -> GuildRecord:
        from .permissions import DEFAULT_EVERYONE

        if owner_id is None:
            owner_id = self.add_user(f"{name}-owner").id
        guild = GuildRecord(id=guild_id or self.snowflake(), name=name, owner_id=owner_id)
        self.guilds[guild.id] = guild
        everyone = RoleRecord(
            id=guild.id,
            guild_id=guild.id,
            name="@everyone",
            permissions=DEFAULT_EVERYONE if everyone_permissions is None else everyone_permissions,
        )
        self.roles[everyone.id] = everyone
        guild.role_ids.append(everyone.id)
        if owner_id in self.users:
            self.add_member(guild.id, owner_id)
        for channel_name in channels:
            self.add_channel(guild.id, channel_name)
        self.changed()
        return guild

    def add_role(
        self,
        guild_id: int,
        name: str,
        *,
        permissions: int = 0,
        role_id: int | None = None,
        **extra: Any,
    ) -> RoleRecord:
        guild = self.guild(guild_id)
        role = RoleRecord(
            id=role_id or self.snowflake(),
            guild_id=guild.id,
            name=name,
            permissions=permissions,
            position=len(guild.role_ids),
            **extra,
        )
        self.roles[role.id] = role
        guild.role_ids.append(role.id)
        self.changed()
        return role

    def add_member(
        self,
        guild_id: int,
        user_id: int,
        *,
        roles: Iterable[int] = (),
        nick: str | None = None,
    ) -> MemberRecord:
        guild = self.guild(guild_id)
        self.user(user_id)
        for role_id in roles:
            if role_id not in guild.role_ids:
                raise ValueError(f"role {role_id} is not a role of guild {guild.name!r}")
        member = MemberRecord(guild_id=guild.id, user_id=user_id, roles=list(roles), nick=nick)
        guild.members[user_id] = member
        self.changed()
        return member

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        type: int = CHANNEL_TEXT,
        topic: str | None = None,
        parent_id: int | None = None,
        channel_id: int | None = None,
        deny_bots: bool = False,
        denied_user_ids: Iterable[int] = (),
        overwrites: Iterable[dict[str, Any]] = (),
    ) -> ChannelRecord:
        guild = self.guild(guild_id)
        channel = ChannelRecord(
            id=channel_id or self.snowflake(),
            type=type,
            name=name,
            guild_id=guild.id,
            position=len(guild.channel_ids),
            topic=topic,
            parent_id=parent_id,
            deny_bots=deny_bots,
            denied_user_ids=set(denied_user_ids),
            overwrites=list(overwrites),
        )
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        self.changed()
        return channel

    def dm_channel(self, bot_user_id: int, user_id: int) -> ChannelRecord:
        """The DM channel between a bot and a user (created on first use)."""
        key = (bot_user_id, user_id)
        existing = self.dm_channels.get(key)
        if existing is not None:
            return self.channels[existing]
        channel = ChannelRecord(
            id=self.snowflake(),
            type=CHANNEL_DM,
            name=None,
            recipient_ids=[bot_user_id, user_id],
        )
        self.channels[channel.id] = channel
        self.dm_channels[key] = channel.id
        self.changed()
        return channel

    # -- lookups -------------------------------------------------------

    def user(self, user_id: int) -> UserRecord:
        try:
            return self.users[int(user_id)]
        except KeyError:
            raise KeyError(f"unknown user {user_id}") from None

    def guild(self, guild_id: int) -> GuildRecord:
        try:
            return self.guilds[int(guild_id)]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}") from None

    def channel(self, channel_id: int) -> ChannelRecord:
        try:
            return self.channels[int(channel_id)]
        except KeyError:
            raise KeyError(f"unknown channel {channel_id}") from None

    def message(self, message_id: int) -> MessageRecord:
        try:
            return self.messages[int(message_id)]
        except KeyError:
            raise KeyError(f"unknown message {message_id}") from None

    def bot(self, ref: Any) -> BotRecord:
        """Resolve a bot by record, user id, token or username."""
        if isinstance(ref, BotRecord):
            return ref
        if isinstance(ref, str):
            if ref in self.bots_by_token:
                return self.bots_by_token[ref]
            for bot in self.bots.values():
                if bot.username == ref:
                    return bot
            if ref.isdigit() and int(ref) in self.bots:
                return self.bots[int(ref)]
        if isinstance(ref, int) and ref in self.bots:
            return self.bots[ref]
        raise KeyError(f"unknown bot {ref!r}")

    def resolve_user_id(self, ref: Any) -> int:
        """A user id from a record, an id or a username."""
        if isinstance(ref, BotRecord):
            return ref.user_id
        if isinstance(ref, UserRecord):
            return ref.id
        if isinstance(ref, int):
            return ref
        if isinstance(ref, str):
            if ref.isdigit():
                return int(ref)
            for user in self.users.values():
                if user.username == ref:
                    return user.id
        raise KeyError(f"unknown user {ref!r}")

    def guilds_of(self, user_id: int) -> list[GuildRecord]:
        return [guild for guild in self.guilds.values() if user_id in guild.members]

    def channel_messages(
        self, channel_id: int, *, include_deleted: bool = False
    ) -> list[MessageRecord]:
        channel = self.channel(channel_id)
        messages = [self.messages[mid] for mid in channel.message_ids]
        return [m for m in messages if include_deleted or not m.deleted]

    # -- messages ------------------------------------------------------

    def create_message(self, channel_id: int, author_id: int, **fields: Any) -> MessageRecord:
        channel = self.channel(channel_id)
        message = MessageRecord(
            id=self.snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            **fields,
        )
        message.snapshot()
        self.messages[message.id] = message
        channel.message_ids.append(message.id)
        self._message_event("MESSAGE_CREATE", message)
        return message

    def edit_message(self, message: MessageRecord, changes: dict[str, Any]) -> MessageRecord:
        for key, value in changes.items():
            setattr(message, key, value)
        message.edited_at = utcnow()
        message.snapshot()
        self._message_event("MESSAGE_UPDATE", message)
        return message

    def delete_message(self, message: MessageRecord) -> None:
        message.deleted = True
        self._message_event("MESSAGE_DELETE", message)

    def _message_event(self, event: str, message: MessageRecord) -> None:
        for listener in self.message_listeners:
            listener(event, message)
        self.changed()

    # -- interactions --------------------------------------------------

    def new_interaction(self, **fields: Any) -> InteractionRecord:
        record = InteractionRecord(
            id=self.snowflake(), token=f"itok.{secrets.token_urlsafe(24)}", **fields
        )
        self.interactions[record.id] = record
        self.interactions_by_token[record.token] = record
        self.changed()
        return record
