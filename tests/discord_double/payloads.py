"""Builders for Discord JSON objects, shaped the way discord.py 2.7 parses them."""

from __future__ import annotations

import re
from typing import Any

from .permissions import channel_overwrites, channel_permissions
from .state import (
    CHANNEL_DM,
    BotRecord,
    ChannelRecord,
    DoubleState,
    GuildRecord,
    MemberRecord,
    MessageRecord,
    RoleRecord,
    UserRecord,
)

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def sid(value: int | None) -> str | None:
    return None if value is None else str(value)


def user_payload(user: UserRecord) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "global_name": user.global_name,
        "discriminator": "0",
        "avatar": None,
        "bot": user.bot,
        "system": False,
        "public_flags": 0,
    }


def self_user_payload(user: UserRecord) -> dict[str, Any]:
    """GET /users/@me and READY.user."""
    return {
        **user_payload(user),
        "verified": True,
        "mfa_enabled": False,
        "flags": 0,
        "locale": "en-US",
        "email": None,
    }


def role_payload(role: RoleRecord) -> dict[str, Any]:
    return {
        "id": str(role.id),
        "name": role.name,
        "permissions": str(role.permissions),
        "position": role.position,
        "color": role.color,
        "colors": {"primary_color": role.color, "secondary_color": None, "tertiary_color": None},
        "hoist": role.hoist,
        "icon": None,
        "unicode_emoji": None,
        "managed": role.managed,
        "mentionable": role.mentionable,
        "flags": 0,
    }


def member_payload(
    state: DoubleState,
    member: MemberRecord,
    *,
    with_user: bool = True,
    permissions: int | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "roles": [str(r) for r in member.roles],
        "nick": member.nick,
        "avatar": None,
        "banner": None,
        "joined_at": member.joined_at.isoformat(),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if with_user:
        payload["user"] = user_payload(state.user(member.user_id))
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def channel_payload(
    state: DoubleState,
    channel: ChannelRecord,
    *,
    for_user_id: int | None = None,
    include_guild_id: bool = True,
) -> dict[str, Any]:
    if channel.type == CHANNEL_DM:
        recipients = [state.user(uid) for uid in channel.recipient_ids[1:]]
        return {
            "id": str(channel.id),
            "type": CHANNEL_DM,
            "last_message_id": sid(channel.message_ids[-1] if channel.message_ids else None),
            "recipients": [user_payload(u) for u in recipients],
            "flags": 0,
        }
    payload: dict[str, Any] = {
        "id": str(channel.id),
        "type": channel.type,
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [
            {
                "id": str(o["id"]),
                "type": int(o["type"]),
                "allow": str(o.get("allow", 0)),
                "deny": str(o.get("deny", 0)),
            }
            for o in channel_overwrites(state, channel)
        ],
        "topic": channel.topic,
        "nsfw": channel.nsfw,
        "parent_id": sid(channel.parent_id),
        "rate_limit_per_user": 0,
        "last_message_id": sid(channel.message_ids[-1] if channel.message_ids else None),
        "flags": 0,
    }
    if include_guild_id:
        payload["guild_id"] = sid(channel.guild_id)
    if for_user_id is not None:
        payload["permissions"] = str(channel_permissions(state, channel, for_user_id))
    return payload


def guild_payload(state: DoubleState, guild: GuildRecord) -> dict[str, Any]:
    """GET /guilds/{id} (no members/channels, like Discord)."""
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role_payload(state.roles[r]) for r in guild.role_ids],
        "emojis": [],
        "stickers": [],
        "features": list(guild.features),
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": sid(guild.default_channel_id),
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "max_members": 500000,
        "max_presences": None,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "incidents_data": None,
    }


def guild_create_payload(
    state: DoubleState, guild: GuildRecord, bot_user_id: int
) -> dict[str, Any]:
    """The full GUILD_CREATE dispatch a bot receives after READY."""
    me = guild.members.get(bot_user_id)
    return {
        **guild_payload(state, guild),
        "joined_at": (me.joined_at if me else guild.created_at).isoformat(),
        "large": False,
        "lazy": True,
        "unavailable": False,
        "member_count": len(guild.members),
        "members": [member_payload(state, m) for m in guild.members.values()],
        "channels": [
            channel_payload(state, state.channels[c], include_guild_id=False)
            for c in guild.channel_ids
        ],
        "threads": [],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "embedded_activities": [],
    }


def message_payload(state: DoubleState, message: MessageRecord) -> dict[str, Any]:
    author = state.user(message.author_id)
    payload: dict[str, Any] = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "author": user_payload(author),
        "content": message.content,
        "timestamp": message.created_at.isoformat(),
        "edited_timestamp": message.edited_at.isoformat() if message.edited_at else None,
        "tts": message.tts,
        "mention_everyone": "@everyone" in message.content,
        "mentions": [
            user_payload(state.users[int(uid)])
            for uid in dict.fromkeys(_MENTION.findall(message.content))
            if int(uid) in state.users
        ],
        "mention_roles": list(dict.fromkeys(_ROLE_MENTION.findall(message.content))),
        "attachments": list(message.attachments),
        "embeds": list(message.embeds),
        "reactions": [],
        "pinned": False,
        "type": message.type,
        "flags": message.flags,
        "components": list(message.components),
    }
    if message.guild_id is not None:
        payload["guild_id"] = str(message.guild_id)
        guild = state.guilds.get(message.guild_id)
        member = guild.members.get(message.author_id) if guild else None
        if member is not None and message.webhook_id is None:
            payload["member"] = member_payload(state, member, with_user=False)
    if message.nonce is not None:
        payload["nonce"] = message.nonce
    if message.message_reference is not None:
        payload["message_reference"] = message.message_reference
        ref_id = message.message_reference.get("message_id")
        referenced = state.messages.get(int(ref_id)) if ref_id else None
        if referenced is not None and not referenced.deleted:
            payload["referenced_message"] = {
                k: v
                for k, v in message_payload(state, referenced).items()
                if k != "referenced_message"
            }
    if message.webhook_id is not None:
        payload["webhook_id"] = str(message.webhook_id)
    if message.application_id is not None:
        payload["application_id"] = str(message.application_id)
    if message.interaction_id is not None:
        interaction = state.interactions.get(message.interaction_id)
        if interaction is not None:
            metadata: dict[str, Any] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user_payload(state.user(interaction.user_id)),
                "authorizing_integration_owners": _integration_owners(
                    interaction.guild_id, interaction.user_id
                ),
            }
            if interaction.original_message_id is not None:
                metadata["original_response_message_id"] = str(interaction.original_message_id)
            if interaction.component_message_id is not None:
                metadata["interacted_message_id"] = str(interaction.component_message_id)
            payload["interaction_metadata"] = metadata
    return payload


def _integration_owners(guild_id: int | None, user_id: int) -> dict[str, str]:
    return {"0": str(guild_id)} if guild_id is not None else {"1": str(user_id)}


def application_payload(state: DoubleState, bot: BotRecord) -> dict[str, Any]:
    """GET /oauth2/applications/@me."""
    owner = state.user(bot.owner_id)
    return {
        "id": str(bot.application_id),
        "name": bot.application_name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "rpc_origins": [],
        "bot_public": True,
        "bot_require_code_grant": False,
        "bot": user_payload(bot.user),
        "owner": user_payload(owner),
        "team": None,
        "verify_key": "0" * 64,
        "flags": application_flags(bot),
        "hook": True,
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "tags": [],
        "install_params": None,
        "integration_types_config": {"0": {}},
        "approximate_guild_count": len(state.guilds_of(bot.user_id)),
    }


def application_flags(bot: BotRecord) -> int:
    # GATEWAY_PRESENCE_LIMITED | GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED
    return ((1 << 13) | (1 << 15) | (1 << 19)) if bot.privileged_intents else 0


def interaction_channel_payload(
    state: DoubleState, channel: ChannelRecord, user_id: int
) -> dict[str, Any]:
    payload = channel_payload(state, channel, for_user_id=user_id)
    if channel.type == CHANNEL_DM:
        payload["recipients"] = [user_payload(state.user(user_id))]
    return payload
