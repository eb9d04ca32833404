"""Seed files: declare users, bots and guilds by key; get back the ids they received.

Format (every "id" is optional; keys default to the username/name)::

    {
      "users":  [{"key": "alice", "username": "alice", "dms_closed": false}],
      "bots":   [{"key": "shipcord", "token": "T1", "username": "shipcord",
                  "guilds": ["main"], "privileged_intents": true}],
      "guilds": [{"key": "main", "name": "Test", "owner": "alice",
                  "channels": [{"key": "general", "name": "general"},
                               {"key": "locked", "name": "locked", "deny_bots": true}],
                  "roles": [{"key": "deployers", "name": "deployers", "permissions": 0}],
                  "members": [{"user": "alice", "roles": ["deployers"]}]}]
    }

Members and owners may name users or bots (by key). Answer::

    {"users": {"alice": "123"}, "bots": {"shipcord": {"user_id": "..", "application_id": "..",
     "token": "T1"}}, "guilds": {"main": {"id": "..", "channels": {"general": ".."},
     "roles": {"deployers": "..", "@everyone": ".."}}}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import DiscordDouble


def _opt_id(entry: dict[str, Any]) -> int | None:
    return int(entry["id"]) if entry.get("id") is not None else None


def load_seed(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError("a seed file holds one JSON object")
    return data


def apply_seed(double: DiscordDouble, seed: dict[str, Any]) -> dict[str, Any]:
    users: dict[str, int] = {}
    for entry in seed.get("users", []):
        user = double.add_user(
            entry["username"],
            user_id=_opt_id(entry),
            dms_closed=bool(entry.get("dms_closed", False)),
            global_name=entry.get("global_name"),
        )
        users[entry.get("key", entry["username"])] = user.id

    bots: dict[str, Any] = {}
    bot_ids: dict[str, int] = {}
    pending_guilds: list[tuple[int, list[str]]] = []
    for entry in seed.get("bots", []):
        username = entry.get("username", "bot")
        owner = entry.get("owner")
        bot = double.add_bot(
            entry["token"],
            username,
            user_id=_opt_id(entry),
            application_name=entry.get("application_name"),
            owner_id=users[owner] if owner else None,
            privileged_intents=bool(entry.get("privileged_intents", True)),
        )
        key = entry.get("key", username)
        bot_ids[key] = bot.user_id
        bots[key] = {
            "user_id": str(bot.user_id),
            "application_id": str(bot.application_id),
            "token": bot.token,
        }
        pending_guilds.append((bot.user_id, list(entry.get("guilds", []))))

    def who(ref: str) -> int:
        if ref in users:
            return users[ref]
        if ref in bot_ids:
            return bot_ids[ref]
        return double.state.resolve_user_id(ref)

    guilds: dict[str, Any] = {}
    guild_ids: dict[str, int] = {}
    for entry in seed.get("guilds", []):
        owner = entry.get("owner")
        channel_entries = entry.get("channels") or [{"name": "general"}]
        guild = double.add_guild(
            entry.get("name", "Test"),
            who(owner) if owner else None,
            channels=(),
            guild_id=_opt_id(entry),
            everyone_permissions=entry.get("everyone_permissions"),
        )
        roles = {"@everyone": guild.everyone_role_id}
        for role_entry in entry.get("roles", []):
            role = double.add_role(
                guild.id,
                role_entry["name"],
                int(role_entry.get("permissions", 0)),
                role_id=_opt_id(role_entry),
            )
            roles[role_entry.get("key", role_entry["name"])] = role.id
        channels: dict[str, int] = {}
        for channel_entry in channel_entries:
            channel = double.state.add_channel(
                guild.id,
                channel_entry["name"],
                channel_id=_opt_id(channel_entry),
                topic=channel_entry.get("topic"),
                deny_bots=bool(channel_entry.get("deny_bots", False)),
            )
            channels[channel_entry.get("key", channel_entry["name"])] = channel.id
        for member_entry in entry.get("members", []):
            double.add_member(
                guild.id,
                who(member_entry["user"]),
                roles=[roles[r] for r in member_entry.get("roles", [])],
                nick=member_entry.get("nick"),
            )
        key = entry.get("key", entry.get("name", "Test"))
        guild_ids[key] = guild.id
        guilds[key] = {
            "id": str(guild.id),
            "channels": {k: str(v) for k, v in channels.items()},
            "roles": {k: str(v) for k, v in roles.items()},
        }

    for bot_user_id, keys in pending_guilds:
        for key in keys:
            guild_id = guild_ids.get(key) or int(key)
            if bot_user_id not in double.state.guild(guild_id).members:
                double.add_member(guild_id, bot_user_id)

    return {
        "users": {k: str(v) for k, v in users.items()},
        "bots": bots,
        "guilds": guilds,
    }
