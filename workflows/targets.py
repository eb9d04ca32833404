"""The targets file: which bots shipcord may deploy, and how."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

import workflows.tokens as tokens
from workflows.file_access import why_unreadable
from workflows.hosts import HostName
from workflows.models import (
    Snowflake,
    quoted,
    unit_name,
    validate_environment_name,
    validate_unit_name,
)
from workflows.validation import validation_problems

# An unknown name is answered with the known ones, up to this many.
KNOWN_LISTED = 20
# A Discord role, by name (up to 100 characters) or by id.
RoleName = Annotated[str, BeforeValidator(str), StringConstraints(min_length=1, max_length=100)]

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PLACEHOLDERS = frozenset({"version", "port", "python"})
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Set by shipcord for every release; a target cannot override them.
RESERVED_ENV = frozenset({"DISCORD_TOKEN", "PORT", "DISCORD_API_BASE"})


class TargetsError(ValueError):
    """The targets file cannot be used; the message names the file, target and field."""


class UnknownTarget(LookupError):
    # The message reaches whoever started the deployment, from any server or client: it
    # names no other bot, since the targets file declares those of every server.
    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"Unknown bot {quoted(name)}: no bot of that name is declared in the targets file."
        )
        self.name = name


class EnvironmentNeeded(UnknownTarget):
    """A bot with several environments was named without one."""

    def __init__(self, bot_name: str, environments: list[str]) -> None:
        super().__init__(
            bot_name,
            f"**{bot_name}** has several environments ({', '.join(environments)}): "
            "name the one to use (the `environment` option).",
        )
        self.environments = environments


def check_placeholders(text: str) -> str:
    for name in PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}} (allowed: {allowed})")
    return text


DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: object) -> float:
    """Seconds from `90`, `"45s"`, `"30m"`, `"2h"` or `"1d"`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = DURATION.fullmatch(value.strip())
        if match:
            return float(match.group(1)) * DURATION_UNITS[match.group(2)]
    raise ValueError('must be a duration such as 90, "45s", "30m" or "2h"')


class ApprovalRule(BaseModel):
    """Deployments of the target wait for someone with `role` (never the requester)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: RoleName
    # Seconds; written as a duration in the targets file.
    timeout: Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=7 * 86400)] = 1800


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    # The targets file's folder: relative paths start here, and so does a process release.
    working_directory: Path
    type: Literal["discord"] = "discord"
    runtime: Literal["process", "docker"] = "process"
    command: list[str] = Field(default_factory=list)
    image: str | None = None
    token_env: str | None = None
    token_file: Path | None = None
    health_url: str | None = None
    commands: Path | None = None
    strategy: Literal["replace", "overlap"] = "replace"
    env: dict[str, str] = Field(default_factory=dict)
    healthy_after: float = Field(default=2.0, ge=0, le=300)
    health_timeout: float = Field(default=60.0, gt=0, le=240)
    # process: run as this user (name or uid); shipcord must run as root to use it.
    user: str | None = Field(default=None, min_length=1, max_length=64)
    # docker: "bridge" (default, isolated from the host's loopback) or "host".
    network: Literal["bridge", "host"] = "bridge"
    # Where it belongs and who may deploy it; empty lists mean the settings' defaults
    # (the configured servers; the admin role or Manage Server).
    guilds: list[Snowflake] = Field(default_factory=list)
    deploy_roles: list[RoleName] = Field(default_factory=list)
    deploy_users: list[Snowflake] = Field(default_factory=list)
    # A deployment waits for this approval before "Deploying to platform".
    approval: ApprovalRule | None = None
    # The host it runs on (None: the default host, see SHIPCORD_DEFAULT_HOST). The copy
    # recorded with a release always names the host it was deployed to.
    host: HostName | None = None
    # Set for a bot's environment (its name is then "bot.environment"): where a release
    # must be live, and for how long without a crash, before it may be deployed here.
    environment: str | None = None
    promote_from: str | None = None
    soak: Annotated[float, BeforeValidator(parse_duration), Field(ge=0, le=30 * 86400)] = 0

    @field_validator("name")
    @classmethod
    def name_is_slug(cls, name: str) -> str:
        return validate_unit_name(name)

    @property
    def bot_name(self) -> str:
        """The bot's name, without its environment."""
        return self.name.partition(".")[0]

    @field_validator("command")
    @classmethod
    def command_parts(cls, command: list[str]) -> list[str]:
        if any(not part for part in command):
            raise ValueError("must not contain empty strings")
        return [check_placeholders(part) for part in command]

    @field_validator("image")
    @classmethod
    def image_placeholders(cls, image: str | None) -> str | None:
        if image is not None:
            for name in PLACEHOLDER.findall(image):
                if name != "version":
                    raise ValueError(f"unknown placeholder {{{name}}} (allowed: {{version}})")
        return image

    @field_validator("token_env")
    @classmethod
    def token_env_is_a_name(cls, name: str | None) -> str | None:
        if name is not None and not ENV_NAME.fullmatch(name):
            raise ValueError("must be an environment variable name such as ECHO_BOT_TOKEN")
        return name

    @field_validator("health_url")
    @classmethod
    def health_url_is_http(cls, url: str | None) -> str | None:
        if url is not None:
            if not url.startswith(("http://", "https://")):
                raise ValueError("must be an http:// or https:// URL")
            check_placeholders(url)
        return url

    @field_validator("env")
    @classmethod
    def env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name in RESERVED_ENV:
                raise ValueError(f"{name} is set by shipcord and cannot be overridden")
        return env

    @model_validator(mode="after")
    def runtime_needs(self) -> Target:
        if self.runtime == "process" and not self.command:
            raise ValueError("command: a process target needs a command (a list of strings)")
        if self.runtime == "docker" and not self.image:
            raise ValueError("image: a docker target needs an image")
        if self.runtime == "docker" and self.user is not None:
            raise ValueError("user: only process targets name a user (an image sets its own)")
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("set exactly one of token_env or token_file")
        return self

    def read_token(self) -> str | None:
        """The bot's token from its variable (environment or `.env`) or secrets file, if
        present; registered with the redactor as it is read (see `workflows.tokens`)."""
        if self.token_env is not None:
            return tokens.read_variable(self.token_env)
        assert self.token_file is not None
        return tokens.read_token_file(self.token_file)

    @property
    def token_source(self) -> str:
        if self.token_env is not None:
            return f"the variable {self.token_env} (environment or .env)"
        return f"the file {self.token_file}"

    def render_command(self, *, version: str, port: int) -> list[str]:
        values = {"version": version, "port": str(port), "python": sys.executable}
        return [PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in self.command]

    def render_image(self, *, version: str) -> str | None:
        return None if self.image is None else self.image.replace("{version}", version)

    def render_health_url(self, *, port: int) -> str | None:
        if self.health_url is None:
            return None
        return self.health_url.replace("{port}", str(port))

    def load_command_manifest(self) -> list[dict[str, Any]] | None:
        """The slash commands to apply, or None when the target declares none."""
        if self.commands is None:
            return None
        try:
            manifest = json.loads(self.commands.read_text(encoding="utf-8"))
        except OSError as error:
            raise TargetsError(
                f"bots.{self.name}.commands: cannot read {self.commands}: "
                f"{why_unreadable(self.commands, error)}"
            ) from None
        except json.JSONDecodeError as error:
            raise TargetsError(
                f"bots.{self.name}.commands: {self.commands} is not valid JSON: {error}"
            ) from None
        if not isinstance(manifest, list) or not all(
            isinstance(command, dict) and isinstance(command.get("name"), str)
            for command in manifest
        ):
            raise TargetsError(
                f"bots.{self.name}.commands: {self.commands} must be a JSON list of command "
                "objects, each with a name"
            )
        return manifest


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    # Every deployable target by name: a bot, or each of its environments ("echo.staging").
    bots: dict[str, Target]
    # A bot with environments: its environment when none is named (the only one, or its
    # `default_environment`).
    default_environments: dict[str, str] = Field(default_factory=dict)

    def get(self, name: str) -> Target:
        """The target `name` names: a bot's own, one of its environments ("echo.staging"),
        or, for a bot with environments, its default one."""
        found = self.bots.get(name)
        if found is not None:
            return found
        environments = self.environments_of(name)
        if not environments:
            raise UnknownTarget(name)
        default = self.default_environments.get(name)
        if default is None:
            raise EnvironmentNeeded(name, environments)
        return self.bots[unit_name(name, default)]

    def resolve(self, bot_name: str, environment: str | None) -> Target:
        """The target of `bot_name` in `environment` (None: the bot's own or default)."""
        if environment is None:
            return self.get(bot_name)
        found = self.bots.get(unit_name(bot_name, environment))
        if found is None:
            if bot_name in self.bots or self.environments_of(bot_name):
                known = ", ".join(self.environments_of(bot_name)) or "none"
                raise UnknownTarget(
                    bot_name,
                    f"**{bot_name}** has no environment {quoted(environment)} "
                    f"(its environments: {known}).",
                )
            raise UnknownTarget(bot_name)
        return found

    def environments_of(self, bot_name: str) -> list[str]:
        return sorted(
            t.environment
            for t in self.bots.values()
            if t.environment is not None and t.bot_name == bot_name
        )


def load_targets(path: Path) -> TargetsFile:
    """Read and validate a targets file; raise TargetsError with a precise message."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TargetsError(f"{path}: targets file not found (set SHIPCORD_TARGETS_FILE)") from None
    except OSError as error:
        raise TargetsError(
            f"{path}: cannot read the targets file: {why_unreadable(path, error)}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise TargetsError(f"{path}: not valid TOML: {error}") from None
    unknown = sorted(set(raw) - {"bots"})
    if unknown:
        raise TargetsError(
            f"{path}: unknown top-level key {unknown[0]!r} (expected [bots.NAME] tables)"
        )
    bots = raw.get("bots", {})
    if not isinstance(bots, dict):
        raise TargetsError(f"{path}: bots must be a table of [bots.NAME] sections")
    base = path.resolve().parent
    targets: dict[str, Target] = {}
    defaults: dict[str, str] = {}
    problems: list[str] = []
    for name, table in bots.items():
        if not isinstance(table, dict):
            problems.append(f"bots.{name}: must be a table")
            continue
        for where, data in _declared_targets(name, table, problems):
            target = _validated_target(where, data, base, problems)
            if target is not None:
                targets[target.name] = target
        default = _default_environment(name, table, problems)
        if default is not None:
            defaults[name] = default
    if problems:
        raise TargetsError(f"{path}: " + "; ".join(problems))
    return TargetsFile(path=path.resolve(), bots=targets, default_environments=defaults)


ENVIRONMENT_ONLY = ("promote_from", "soak")


def _declared_targets(
    name: str, table: dict[str, Any], problems: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """The targets one `[bots.NAME]` table declares, each with where it is written: the bot
    itself, or each of its environments, which override any of the bot's fields."""
    table = dict(table)
    table.pop("default_environment", None)
    environments = table.pop("environments", None)
    if "environment" in table:
        problems.append(f"bots.{name}.environment: declare [bots.{name}.environments.NAME]")
        return []
    if environments is None:
        misplaced = [field for field in ENVIRONMENT_ONLY if field in table]
        for field in misplaced:
            problems.append(f"bots.{name}.{field}: only an environment may set it")
        return [] if misplaced else [(f"bots.{name}", dict(table, name=name))]
    if not isinstance(environments, dict) or not environments:
        problems.append(f"bots.{name}.environments: must hold [bots.{name}.environments.NAME]")
        return []
    declared = []
    for environment, overrides in environments.items():
        where = f"bots.{name}.environments.{environment}"
        try:
            validate_environment_name(environment)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if not isinstance(overrides, dict) or "environment" in overrides:
            problems.append(f"{where}: must be a table of the bot's fields (its name is ENV)")
            continue
        source = overrides.get("promote_from")
        if source is not None and (source == environment or source not in environments):
            problems.append(
                f"{where}.promote_from: must name another environment of {name} "
                f"({', '.join(sorted(set(environments) - {environment})) or 'none'})"
            )
            continue
        data = {**table, **overrides, "name": unit_name(name, environment)}
        declared.append((where, dict(data, environment=environment)))
    return declared


def _validated_target(
    where: str, data: dict[str, Any], base: Path, problems: list[str]
) -> Target | None:
    data = dict(data, working_directory=base)
    for field in ("commands", "token_file"):
        if isinstance(data.get(field), str):
            data[field] = base / data[field]
    try:
        return Target.model_validate(data)
    except ValidationError as error:
        for field, message, _ in validation_problems(error):
            problems.append(f"{where}.{field}: {message}" if field else f"{where}: {message}")
        return None


def _default_environment(name: str, table: dict[str, Any], problems: list[str]) -> str | None:
    environments = table.get("environments")
    default = table.get("default_environment")
    if not isinstance(environments, dict):
        if default is not None:
            problems.append(f"bots.{name}.default_environment: the bot has no environments")
        return None
    if default is None:
        return next(iter(environments)) if len(environments) == 1 else None
    if default not in environments:
        problems.append(
            f"bots.{name}.default_environment: {quoted(str(default))} is not one of its "
            f"environments ({', '.join(environments)})"
        )
        return None
    return str(default)


class TargetRegistry:
    """The targets file, re-read when it changes so edits apply without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: TargetsFile | None = None
        self._stamp: tuple[int, int] | None = None

    def current(self) -> TargetsFile:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if self._loaded is None or stamp != self._stamp:
            self._loaded = load_targets(self.path)
            self._stamp = stamp
        return self._loaded

    def get(self, name: str) -> Target:
        return self.current().get(name)
