"""Application commands, global and per guild, stored per application."""

from __future__ import annotations

from typing import Any

from .api import ApiError, ApiRequest, ApiResult, ApiServer, form_error
from .state import DoubleState

COMMAND_FIELDS = (
    "name",
    "name_localizations",
    "description",
    "description_localizations",
    "options",
    "default_member_permissions",
    "dm_permission",
    "default_permission",
    "nsfw",
    "contexts",
    "integration_types",
    "handler",
)


class CommandStore:
    def __init__(self, state: DoubleState) -> None:
        self.state = state

    def table(self, application_id: int, guild_id: int | None) -> dict[int, dict[str, Any]]:
        if guild_id is None:
            return self.state.global_commands.setdefault(application_id, {})
        return self.state.guild_commands.setdefault((application_id, guild_id), {})

    def find(
        self, application_id: int, name: str, guild_id: int | None = None, type: int = 1
    ) -> dict[str, Any] | None:
        """A guild command if registered there, else the global one."""
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self.table(application_id, scope).values():
                if command["name"] == name and command.get("type", 1) == type:
                    return command
        return None

    def build(
        self,
        application_id: int,
        guild_id: int | None,
        body: dict[str, Any],
        existing: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        command_type = int(body.get("type") or (existing or {}).get("type") or 1)
        merged = {**(existing or {}), **{k: body[k] for k in COMMAND_FIELDS if k in body}}
        name = merged.get("name")
        if not name or not isinstance(name, str) or len(name) > 32:
            raise form_error("name", "BASE_TYPE_REQUIRED", "This field is required")
        if command_type == 1:
            if name != name.lower() or " " in name:
                raise form_error("name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
            description = merged.get("description")
            if not description or len(description) > 100:
                raise form_error(
                    "description", "BASE_TYPE_REQUIRED", "Must be between 1 and 100 in length."
                )
        command: dict[str, Any] = {
            "id": existing["id"] if existing else str(self.state.snowflake()),
            "application_id": str(application_id),
            "version": str(self.state.snowflake()),
            "type": command_type,
            "name": name,
            "name_localizations": merged.get("name_localizations"),
            "description": merged.get("description") or "",
            "description_localizations": merged.get("description_localizations"),
            "default_member_permissions": merged.get("default_member_permissions"),
            "dm_permission": merged.get("dm_permission", True),
            "nsfw": bool(merged.get("nsfw", False)),
            "contexts": merged.get("contexts"),
            "integration_types": merged.get("integration_types", [0]),
        }
        if merged.get("options"):
            command["options"] = merged["options"]
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        return command

    def overwrite(
        self, application_id: int, guild_id: int | None, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        table = self.table(application_id, guild_id)
        by_key = {(c["name"], c["type"]): c for c in table.values()}
        seen: set[tuple[str, int]] = set()
        result: list[dict[str, Any]] = []
        for index, body in enumerate(bodies):
            key = (str(body.get("name")), int(body.get("type") or 1))
            if key in seen:
                raise form_error(
                    str(index), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Duplicate command name"
                )
            seen.add(key)
            previous = by_key.get(key)
            result.append(self.build(application_id, guild_id, body, existing=_identity(previous)))
        table.clear()
        for command in result:
            table[int(command["id"])] = command
        self.state.changed()
        return result


def _identity(command: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keep only the id of an overwritten command: PUT replaces every other field."""
    return {"id": command["id"], "type": command["type"]} if command else None


class CommandHandlers:
    def __init__(self, state: DoubleState, api: ApiServer, store: CommandStore) -> None:
        self.state = state
        self.store = store
        r = api.router
        for prefix in ("/applications/{app_id}", "/applications/{app_id}/guilds/{guild_id}"):
            r.add("GET", f"{prefix}/commands", self.list)
            r.add("PUT", f"{prefix}/commands", self.overwrite)
            r.add("POST", f"{prefix}/commands", self.create)
            r.add("GET", f"{prefix}/commands/{{command_id}}", self.get)
            r.add("PATCH", f"{prefix}/commands/{{command_id}}", self.edit)
            r.add("DELETE", f"{prefix}/commands/{{command_id}}", self.delete)

    def _scope(self, req: ApiRequest) -> tuple[int, int | None]:
        bot = req.require_bot()
        application_id = req.param("app_id")
        if application_id != bot.application_id:
            raise ApiError(403, 50001, "Missing Access")
        guild_id: int | None = None
        if "guild_id" in req.params:
            guild_id = req.param("guild_id")
            guild = self.state.guilds.get(guild_id)
            if guild is None:
                raise ApiError(404, 10004, "Unknown Guild")
            if bot.user_id not in guild.members:
                raise ApiError(403, 50001, "Missing Access")
        return application_id, guild_id

    def _command(self, req: ApiRequest) -> tuple[int, int | None, dict[str, Any]]:
        application_id, guild_id = self._scope(req)
        command = self.store.table(application_id, guild_id).get(req.param("command_id"))
        if command is None:
            raise ApiError(404, 10063, "Unknown application command")
        return application_id, guild_id, command

    async def list(self, req: ApiRequest) -> ApiResult:
        application_id, guild_id = self._scope(req)
        return ApiResult(list(self.store.table(application_id, guild_id).values()))

    async def overwrite(self, req: ApiRequest) -> ApiResult:
        application_id, guild_id = self._scope(req)
        bodies = req.body if isinstance(req.body, list) else []
        if not isinstance(req.body, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        return ApiResult(self.store.overwrite(application_id, guild_id, bodies))

    async def create(self, req: ApiRequest) -> ApiResult:
        application_id, guild_id = self._scope(req)
        body = req.json_object()
        key = (str(body.get("name")), int(body.get("type") or 1))
        existing = next(
            (
                c
                for c in self.store.table(application_id, guild_id).values()
                if (c["name"], c["type"]) == key
            ),
            None,
        )
        command = self.store.build(application_id, guild_id, body, existing=_identity(existing))
        self.store.table(application_id, guild_id)[int(command["id"])] = command
        self.state.changed()
        return ApiResult(command, status=200 if existing else 201)

    async def get(self, req: ApiRequest) -> ApiResult:
        _, _, command = self._command(req)
        return ApiResult(command)

    async def edit(self, req: ApiRequest) -> ApiResult:
        application_id, guild_id, command = self._command(req)
        updated = self.store.build(application_id, guild_id, req.json_object(), existing=command)
        self.store.table(application_id, guild_id)[int(updated["id"])] = updated
        self.state.changed()
        return ApiResult(updated)

    async def delete(self, req: ApiRequest) -> ApiResult:
        application_id, guild_id, command = self._command(req)
        del self.store.table(application_id, guild_id)[int(command["id"])]
        self.state.changed()
        return ApiResult(status=204)
