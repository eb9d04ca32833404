"""shipcord's settings, read from the environment and an optional `.env` file.

Every setting has exactly one environment variable, declared next to the field
(`validation_alias`). The guide's `TEMPORAL_*` names are kept as they are; shipcord's own
settings use the `SHIPCORD_` prefix. Use `load_settings()` rather than `Settings()` directly:
it turns pydantic's validation dump into a `SettingsError` with one line per problem, each
naming the variable to fix, and never echoes a secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

__all__ = ["LOG_LEVELS", "Settings", "SettingsError", "load_settings"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_SECRET_FIELDS = frozenset({"discord_token", "temporal_api_key"})
# host:port, where host may be a name, an IPv4 address or a bracketed IPv6 address.
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class SettingsError(ValueError):
    """Invalid configuration. `str()` is a readable message, one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = [f"invalid shipcord configuration ({len(problems)} {noun}):"]
        lines += [f"  {problem}" for problem in problems]
        super().__init__("\n".join(lines))


class Settings(BaseSettings):
    """All of shipcord's configuration. Attribute names are Python names; env names below."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # An empty variable (`DISCORD_TOKEN=` in .env.example) means "not set".
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
        validate_default=True,
    )

    # -- Temporal (names from the integration guide) --------------------------------------
    temporal_enabled: bool = Field(True, validation_alias="TEMPORAL_ENABLED")
    temporal_address: str | None = Field(None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_task_queue: str = Field("opencell-tasks", validation_alias="TEMPORAL_TASK_QUEUE")
    temporal_tls_cert_path: FilePath | None = Field(None, validation_alias="TEMPORAL_TLS_CERT_PATH")
    temporal_tls_key_path: FilePath | None = Field(None, validation_alias="TEMPORAL_TLS_KEY_PATH")
    temporal_tls_ca_path: FilePath | None = Field(None, validation_alias="TEMPORAL_TLS_CA_PATH")
    temporal_api_key: SecretStr | None = Field(None, validation_alias="TEMPORAL_API_KEY")

    # -- embedded Temporal dev server (used when TEMPORAL_ADDRESS is unset) -----------------
    temporal_port: int = Field(7233, validation_alias="SHIPCORD_TEMPORAL_PORT")
    temporal_ui_port: int = Field(8233, validation_alias="SHIPCORD_TEMPORAL_UI_PORT")
    # Loopback by default: the dev server has no authentication. Docker sets 0.0.0.0.
    temporal_ip: str = Field("127.0.0.1", validation_alias="SHIPCORD_TEMPORAL_IP")
    temporal_ui_ip: str = Field("127.0.0.1", validation_alias="SHIPCORD_TEMPORAL_UI_IP")
    temporal_ui_url: str | None = Field(None, validation_alias="SHIPCORD_TEMPORAL_UI_URL")

    # -- Discord ----------------------------------------------------------------------------
    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")
    discord_api_base: str = Field(
        "https://discord.com/api/v10", validation_alias="DISCORD_API_BASE"
    )
    discord_dev_guild_id: int | None = Field(None, validation_alias="DISCORD_DEV_GUILD_ID")
    admin_role: str | None = Field(None, validation_alias="SHIPCORD_ADMIN_ROLE")

    # -- shipcord -----------------------------------------------------------------------------
    data_dir: Path = Field(Path("./data"), validation_alias="SHIPCORD_DATA_DIR")
    targets_file: Path = Field(Path("targets.toml"), validation_alias="SHIPCORD_TARGETS_FILE")
    log_level: str = Field("INFO", validation_alias="SHIPCORD_LOG_LEVEL")
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", validation_alias="SHIPCORD_LOG_FORMAT"
    )
    progress_interval: float = Field(2.0, gt=0, validation_alias="SHIPCORD_PROGRESS_INTERVAL")
    metrics_port: int | None = Field(None, validation_alias="SHIPCORD_METRICS_PORT")

    # -- field validators -------------------------------------------------------------------

    @field_validator(
        "temporal_address",
        "temporal_tls_cert_path",
        "temporal_tls_key_path",
        "temporal_tls_ca_path",
        "temporal_api_key",
        "temporal_ui_url",
        "discord_token",
        "discord_dev_guild_id",
        "admin_role",
        "metrics_port",
        mode="before",
    )
    @classmethod
    def _blank_means_unset(cls, value: Any) -> Any:
        # env_ignore_empty covers the environment; this covers .env files and overrides.
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("temporal_address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _HOST_PORT.match(value)
        if not match or not 1 <= int(match.group(1)) <= 65535:
            raise ValueError("expected host:port, e.g. localhost:7233 (no scheme)")
        return value

    @field_validator("temporal_namespace", "temporal_task_queue", "temporal_ip", "temporal_ui_ip")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("temporal_port", "temporal_ui_port", "metrics_port")
    @classmethod
    def _check_port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise ValueError("must be a TCP port between 1 and 65535")
        return value

    @field_validator("discord_api_base", "temporal_ui_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("discord_dev_guild_id")
    @classmethod
    def _check_snowflake(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive Discord guild id")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_log_level(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        level = value.strip().upper()
        level = _LOG_LEVEL_ALIASES.get(level, level)
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _normalise_log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("data_dir", "targets_file")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        problems: list[str] = []
        if (self.temporal_tls_cert_path is None) != (self.temporal_tls_key_path is None):
            problems.append(
                "TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together "
                "(a client certificate needs its private key)"
            )
        remote_only = [
            name
            for name, value in (
                ("TEMPORAL_TLS_CERT_PATH", self.temporal_tls_cert_path),
                ("TEMPORAL_TLS_CA_PATH", self.temporal_tls_ca_path),
                ("TEMPORAL_API_KEY", self.temporal_api_key),
            )
            if value is not None
        ]
        if self.temporal_address is None and remote_only:
            verb = "applies" if len(remote_only) == 1 else "apply"
            problems.append(
                f"{' and '.join(remote_only)} only {verb} to a remote Temporal server: "
                "set TEMPORAL_ADDRESS too (the embedded dev server has no TLS)"
            )
        if self.embedded_temporal and self.temporal_port == self.temporal_ui_port:
            problems.append(
                "SHIPCORD_TEMPORAL_PORT and SHIPCORD_TEMPORAL_UI_PORT must differ "
                f"(both are {self.temporal_port})"
            )
        if self.metrics_port is not None:
            taken = {self.temporal_port, self.temporal_ui_port} if self.embedded_temporal else set()
            if self.metrics_port >= 65535:
                problems.append(
                    "SHIPCORD_METRICS_PORT must be below 65535 "
                    "(the Temporal SDK's metrics use the next port)"
                )
            elif taken & {self.metrics_port, self.metrics_port + 1}:
                problems.append(
                    "SHIPCORD_METRICS_PORT and the port after it (Temporal SDK metrics) "
                    "must not be SHIPCORD_TEMPORAL_PORT or SHIPCORD_TEMPORAL_UI_PORT"
                )
        if problems:
            # Raised as one ValueError; load_settings() splits it back into lines.
            raise ValueError("\n".join(problems))
        return self

    # -- derived values -----------------------------------------------------------------------

    @property
    def database_path(self) -> Path:
        """shipcord's own SQLite database (ownership, messages, bots, releases)."""
        return self.data_dir / "shipcord.db"

    @property
    def temporal_db_path(self) -> Path:
        """The embedded Temporal dev server's SQLite file."""
        return self.data_dir / "temporal.db"

    @property
    def embedded_temporal(self) -> bool:
        """True when shipcord runs its own Temporal dev server (no TEMPORAL_ADDRESS)."""
        return self.temporal_address is None

    @property
    def sdk_metrics_port(self) -> int | None:
        """Port of the Temporal SDK's own Prometheus endpoint: SHIPCORD_METRICS_PORT + 1."""
        return None if self.metrics_port is None else self.metrics_port + 1

    @property
    def web_ui_base(self) -> str | None:
        """Base URL of the Temporal Web UI, when one is known."""
        if self.temporal_ui_url is not None:
            return self.temporal_ui_url
        if self.embedded_temporal:
            return f"http://127.0.0.1:{self.temporal_ui_port}"
        return None

    def workflow_url(self, workflow_id: str) -> str | None:
        """Link to a workflow in the Temporal Web UI, or None when no UI is known."""
        base = self.web_ui_base
        if base is None:
            return None
        namespace = quote(self.temporal_namespace, safe="")
        return f"{base}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"


_ENV_NAMES: dict[str, str] = {}
for _name, _field in Settings.model_fields.items():
    _alias = _field.validation_alias
    assert isinstance(_alias, str), _name
    _ENV_NAMES[_name] = _ENV_NAMES[_alias.lower()] = _alias
_SECRET_ENV_NAMES = {_ENV_NAMES[name] for name in _SECRET_FIELDS}


def _problem_lines(error: ValidationError) -> list[str]:
    lines: list[str] = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if not item["loc"]:  # model-level check: the message names its variables itself
            lines.extend(message.splitlines())
            continue
        key = str(item["loc"][0])
        env_name = _ENV_NAMES.get(key) or _ENV_NAMES.get(key.lower()) or key
        message = message[:1].lower() + message[1:]
        line = f"{env_name}: {message}"
        value = item.get("input")
        # Echo the offending value to help fixing it, except for secrets.
        if env_name not in _SECRET_ENV_NAMES and isinstance(value, str | int | float | Path):
            line += f" (got {str(value)!r})"
        lines.append(line)
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and `.env`; keyword overrides win.

    Overrides use Python attribute names (`temporal_port=7234`). pydantic-settings' own
    init options such as `_env_file=None` pass through. Raises `SettingsError`.
    """
    unknown = sorted(
        key for key in overrides if not key.startswith("_") and key not in Settings.model_fields
    )
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_problem_lines(error)) from None
    except PydanticSettingsError as error:  # e.g. an unreadable .env file
        raise SettingsError([str(error)]) from None
