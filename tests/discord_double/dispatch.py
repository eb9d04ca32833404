"""Builds INTERACTION_CREATE payloads: slash commands, autocomplete and component clicks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .commands import CommandStore
from .payloads import (
    ATTACHMENT_SIZE_LIMIT,
    channel_payload,
    interaction_channel_payload,
    member_payload,
    message_payload,
    role_payload,
    user_payload,
)
from .permissions import base_permissions, channel_permissions
from .state import (
    CHANNEL_DM,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMMAND,
    INTERACTION_COMPONENT,
    BotRecord,
    ChannelRecord,
    DoubleState,
    InteractionRecord,
)

OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_USER = 6
OPTION_CHANNEL = 7
OPTION_ROLE = 8
OPTION_MENTIONABLE = 9
OPTION_NUMBER = 10
SNOWFLAKE_OPTIONS = {OPTION_USER, OPTION_CHANNEL, OPTION_ROLE, OPTION_MENTIONABLE}

KIND_TYPES = {
    "command": INTERACTION_COMMAND,
    "slash": INTERACTION_COMMAND,
    "autocomplete": INTERACTION_AUTOCOMPLETE,
    "component": INTERACTION_COMPONENT,
    "button": INTERACTION_COMPONENT,
}


def infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPTION_BOOLEAN
    if isinstance(value, int):
        return OPTION_INTEGER
    if isinstance(value, float):
        return OPTION_NUMBER
    return OPTION_STRING


class InteractionBuilder:
    def __init__(self, state: DoubleState, commands: CommandStore) -> None:
        self.state = state
        self.commands = commands

    def resolve_context(
        self,
        bot: BotRecord,
        user_id: int,
        guild_id: int | None,
        channel_id: int | None,
    ) -> tuple[int | None, ChannelRecord]:
        """Guild and channel for an interaction; DMs when there is no guild."""
        if channel_id is not None:
            channel = self.state.channel(channel_id)
            return channel.guild_id, channel
        if guild_id is None:
            shared = [
                g
                for g in self.state.guilds_of(user_id)
                if bot.user_id in g.members and g.default_channel_id is not None
            ]
            if not shared:
                return None, self.state.dm_channel(bot.user_id, user_id)
            guild_id = shared[0].id
        guild = self.state.guild(guild_id)
        if guild.default_channel_id is None:
            raise ValueError(f"guild {guild.name!r} has no channel to use")
        return guild.id, self.state.channel(guild.default_channel_id)

    def build(
        self,
        bot: BotRecord,
        *,
        interaction_type: int,
        user_id: int,
        guild_id: int | None,
        channel: ChannelRecord,
        data: dict[str, Any],
        message_id: int | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        state = self.state
        if guild_id is not None:
            guild = state.guild(guild_id)
            if user_id not in guild.members:
                raise ValueError(f"user {user_id} is not a member of guild {guild.name!r}")
            if bot.user_id not in guild.members:
                raise ValueError(f"bot {bot.username!r} is not a member of guild {guild.name!r}")
        record = state.new_interaction(
            type=interaction_type,
            bot_user_id=bot.user_id,
            application_id=bot.application_id,
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel.id,
            data=data,
            component_message_id=message_id,
        )
        payload: dict[str, Any] = {
            "id": str(record.id),
            "application_id": str(bot.application_id),
            "type": interaction_type,
            "data": data,
            "token": record.token,
            "version": 1,
            "channel_id": str(channel.id),
            "channel": interaction_channel_payload(state, channel, user_id),
            "app_permissions": str(channel_permissions(state, channel, bot.user_id)),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if guild_id is not None:
            member = state.guild(guild_id).members[user_id]
            payload["guild_id"] = str(guild_id)
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = member_payload(
                state, member, permissions=channel_permissions(state, channel, user_id)
            )
            payload["authorizing_integration_owners"] = {"0": str(guild_id)}
            payload["context"] = 0
        else:
            payload["user"] = user_payload(state.user(user_id))
            payload["authorizing_integration_owners"] = {"0": str(user_id)}
            payload["context"] = 1 if channel.type == CHANNEL_DM else 2
        if message_id is not None:
            payload["message"] = message_payload(state, state.message(message_id))
        record.payload = payload
        return record

    # -- data blocks -----------------------------------------------------------

    def command_data(
        self,
        bot: BotRecord,
        command: str,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
        *,
        guild_id: int | None,
        focused: str | None = None,
    ) -> dict[str, Any]:
        """``command`` may name a subcommand path: "deploy", "config set", "a b c"."""
        names = command.split()
        registered = self.commands.find(bot.application_id, names[0], guild_id)
        definitions: list[dict[str, Any]] = list((registered or {}).get("options") or [])
        leaf_options = self._options(options, definitions, names[1:], focused)
        for depth in range(len(names) - 1, 0, -1):
            option_type = (
                OPTION_SUB_COMMAND if depth == len(names) - 1 else OPTION_SUB_COMMAND_GROUP
            )
            leaf_options = [{"name": names[depth], "type": option_type, "options": leaf_options}]
        data: dict[str, Any] = {
            "id": registered["id"] if registered else str(self.state.snowflake()),
            "name": names[0],
            "type": 1,
            "options": leaf_options,
        }
        if registered and registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        resolved = self._resolved(leaf_options, guild_id)
        if resolved:
            data["resolved"] = resolved
        return data

    def _options(
        self,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
        definitions: list[dict[str, Any]],
        path: list[str],
        focused: str | None,
    ) -> list[dict[str, Any]]:
        for name in path:
            match = next((d for d in definitions if d.get("name") == name), None)
            definitions = list((match or {}).get("options") or [])
        if options is None:
            return []
        if not isinstance(options, Mapping):
            built = [dict(o) for o in options]
            for raw_option in built:
                if focused is not None and raw_option.get("name") == focused:
                    raw_option["focused"] = True
            return built
        by_name = {d.get("name"): d for d in definitions}
        result: list[dict[str, Any]] = []
        for name, value in options.items():
            definition = by_name.get(name)
            option_type = int(definition["type"]) if definition else infer_option_type(value)
            if option_type in SNOWFLAKE_OPTIONS:
                value = str(getattr(value, "id", None) or getattr(value, "user_id", None) or value)
            option: dict[str, Any] = {"name": name, "type": option_type, "value": value}
            if focused == name:
                option["focused"] = True
            result.append(option)
        return result

    def _resolved(self, options: list[dict[str, Any]], guild_id: int | None) -> dict[str, Any]:
        state = self.state
        resolved: dict[str, dict[str, Any]] = {}
        stack = list(options)
        while stack:
            option = stack.pop()
            stack.extend(option.get("options") or [])
            option_type = option.get("type")
            if option_type not in SNOWFLAKE_OPTIONS or option.get("focused"):
                continue
            snowflake = int(option["value"])
            if option_type in (OPTION_USER, OPTION_MENTIONABLE) and snowflake in state.users:
                resolved.setdefault("users", {})[str(snowflake)] = user_payload(
                    state.user(snowflake)
                )
                guild = state.guilds.get(guild_id or 0)
                member = guild.members.get(snowflake) if guild else None
                if member is not None:
                    resolved.setdefault("members", {})[str(snowflake)] = member_payload(
                        state,
                        member,
                        with_user=False,
                        permissions=base_permissions(state, member.guild_id, snowflake),
                    )
            elif option_type in (OPTION_ROLE, OPTION_MENTIONABLE) and snowflake in state.roles:
                resolved.setdefault("roles", {})[str(snowflake)] = role_payload(
                    state.roles[snowflake]
                )
            elif option_type == OPTION_CHANNEL and snowflake in state.channels:
                channel = state.channels[snowflake]
                payload = channel_payload(state, channel)
                payload["permissions"] = "0"
                resolved.setdefault("channels", {})[str(snowflake)] = payload
        return resolved

    @staticmethod
    def component_data(
        custom_id: str, component_type: int = 2, values: Sequence[str] | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        return data
