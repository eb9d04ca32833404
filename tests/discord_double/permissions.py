"""Discord permission arithmetic (guild base permissions and channel overwrites)."""

from __future__ import annotations

from .state import ChannelRecord, DoubleState

ADD_REACTIONS = 1 << 6
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL = (1 << 53) - 1

DEFAULT_EVERYONE = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)

BOT_DENIED = SEND_MESSAGES | SEND_MESSAGES_IN_THREADS | MANAGE_MESSAGES


def base_permissions(state: DoubleState, guild_id: int, user_id: int) -> int:
    guild = state.guild(guild_id)
    if user_id == guild.owner_id:
        return ALL
    member = guild.members.get(user_id)
    value = state.roles[guild.everyone_role_id].permissions
    if member is not None:
        for role_id in member.roles:
            role = state.roles.get(role_id)
            if role is not None:
                value |= role.permissions
    if value & ADMINISTRATOR:
        return ALL
    return value


def channel_overwrites(state: DoubleState, channel: ChannelRecord) -> list[dict[str, int | str]]:
    """Stored overwrites plus the synthetic member overwrites that deny bots."""
    overwrites: list[dict[str, int | str]] = [dict(o) for o in channel.overwrites]
    if channel.guild_id is None:
        return overwrites
    guild = state.guild(channel.guild_id)
    for user_id in guild.members:
        user = state.users.get(user_id)
        if user is not None and channel.denies(user_id, is_bot=user.bot):
            overwrites.append({"id": user_id, "type": 1, "allow": 0, "deny": BOT_DENIED})
    return overwrites


def channel_permissions(state: DoubleState, channel: ChannelRecord, user_id: int) -> int:
    if channel.guild_id is None:
        return DEFAULT_EVERYONE
    guild = state.guild(channel.guild_id)
    value = base_permissions(state, guild.id, user_id)
    if value & ADMINISTRATOR or user_id == guild.owner_id:
        return ALL
    member = guild.members.get(user_id)
    member_roles = set(member.roles) if member else set()
    overwrites = channel_overwrites(state, channel)

    def apply(matching: list[dict[str, int | str]]) -> None:
        nonlocal value
        deny = allow = 0
        for overwrite in matching:
            deny |= int(overwrite.get("deny", 0))
            allow |= int(overwrite.get("allow", 0))
        value = (value & ~deny) | allow

    apply([o for o in overwrites if int(o["id"]) == guild.everyone_role_id and int(o["type"]) == 0])
    apply([o for o in overwrites if int(o["type"]) == 0 and int(o["id"]) in member_roles])
    apply([o for o in overwrites if int(o["type"]) == 1 and int(o["id"]) == user_id])
    return value
