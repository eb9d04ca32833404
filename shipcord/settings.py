"""shipcord's settings, read from the environment and an optional `.env` file."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    FilePath,
    HttpUrl,
    PositiveInt,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from workflows.file_access import why_unreadable
from workflows.hosts import DEFAULT_HOST, HostName
from workflows.models import DEFAULT_API_BASE, DEFAULT_TASK_QUEUE
from workflows.validation import validation_problems

__all__ = ["LOG_LEVELS", "Settings", "SettingsError", "load_settings"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SECRET_FIELDS = frozenset({"discord_token", "temporal_api_key", "payload_key"})
# The file pydantic-settings reads beside the environment (relative to the working folder);
# target tokens are looked up there too (workflows.tokens).
ENV_FILE = Path(".env")
# AES key sizes (bytes) that AES-GCM takes.
_AES_KEY_SIZES = (16, 24, 32)
# host:port, where host may be a name, an IPv4 address or a bracketed IPv6 address.
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def _host_port(value: str) -> str:
    match = _HOST_PORT.fullmatch(value)
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise ValueError("expected host:port, e.g. localhost:7233 (no scheme)")
    return value


_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_base(value: object) -> object:
    """Checked by pydantic's own URL type, kept as text without a trailing slash."""
    if value is None:
        return None
    try:
        url = _HTTP_URL.validate_python(value)
    except ValidationError:
        raise ValueError("must be an http:// or https:// URL") from None
    return str(url).rstrip("/")


Port = Annotated[int, Field(ge=1, le=65535)]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
HostPort = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_host_port)]
HttpBase = Annotated[str, BeforeValidator(_http_base)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}


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
        env_file=ENV_FILE,
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
    temporal_address: HostPort | None = Field(None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: NonBlank = Field("default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_task_queue: NonBlank = Field(
        DEFAULT_TASK_QUEUE, validation_alias="TEMPORAL_TASK_QUEUE"
    )
    temporal_tls_cert_path: FilePath | None = Field(None, validation_alias="TEMPORAL_TLS_CERT_PATH")
    temporal_tls_key_path: FilePath | None = Field(None, validation_alias="TEMPORAL_TLS_KEY_PATH")
    temporal_tls_ca_path: FilePath | None = Field(None, validation_alias="TEMPORAL_TLS_CA_PATH")
    temporal_api_key: SecretStr | None = Field(None, validation_alias="TEMPORAL_API_KEY")

    # -- embedded Temporal dev server (used when TEMPORAL_ADDRESS is unset) -----------------
    temporal_port: Port = Field(7233, validation_alias="SHIPCORD_TEMPORAL_PORT")
    temporal_ui_port: Port = Field(8233, validation_alias="SHIPCORD_TEMPORAL_UI_PORT")
    # Loopback by default: the dev server has no authentication. Docker sets 0.0.0.0.
    temporal_ip: NonBlank = Field("127.0.0.1", validation_alias="SHIPCORD_TEMPORAL_IP")
    temporal_ui_ip: NonBlank = Field("127.0.0.1", validation_alias="SHIPCORD_TEMPORAL_UI_IP")
    temporal_ui_url: HttpBase | None = Field(None, validation_alias="SHIPCORD_TEMPORAL_UI_URL")

    # -- payload encryption (off unless a key is set) -------------------------------------
    # Base64 of a 16, 24 or 32-byte AES key: workflow inputs, results and history encrypted.
    payload_key: SecretStr | None = Field(None, validation_alias="SHIPCORD_PAYLOAD_KEY")
    # The codec endpoint the Temporal Web UI decodes payloads with (only with a key).
    codec_port: Port = Field(8234, validation_alias="SHIPCORD_CODEC_PORT")
    codec_ip: NonBlank = Field("127.0.0.1", validation_alias="SHIPCORD_CODEC_IP")

    # -- Discord ----------------------------------------------------------------------------
    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")
    # The token in a file instead (the Docker secrets convention): set one of the two.
    discord_token_file: Path | None = Field(None, validation_alias="DISCORD_TOKEN_FILE")
    discord_api_base: HttpBase = Field(DEFAULT_API_BASE, validation_alias="DISCORD_API_BASE")
    discord_dev_guild_id: PositiveInt | None = Field(None, validation_alias="DISCORD_DEV_GUILD_ID")
    admin_role: str | None = Field(None, validation_alias="SHIPCORD_ADMIN_ROLE")
    # The servers shipcord serves (and that targets belong to unless they name their own).
    guild_ids: Annotated[list[PositiveInt], NoDecode] = Field(
        default_factory=list, validation_alias="SHIPCORD_GUILD_IDS"
    )
    leave_unconfigured_guilds: bool = Field(
        False, validation_alias="SHIPCORD_LEAVE_UNCONFIGURED_GUILDS"
    )

    # -- shipcord -----------------------------------------------------------------------------
    data_dir: Path = Field(Path("./data"), validation_alias="SHIPCORD_DATA_DIR")
    targets_file: Path = Field(Path("targets.toml"), validation_alias="SHIPCORD_TARGETS_FILE")
    log_level: LogLevel = Field("INFO", validation_alias="SHIPCORD_LOG_LEVEL")
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", validation_alias="SHIPCORD_LOG_FORMAT"
    )
    progress_interval: float = Field(2.0, gt=0, validation_alias="SHIPCORD_PROGRESS_INTERVAL")
    # Seconds between two supervision rounds (active releases against what runs).
    reconcile_interval: float = Field(10.0, gt=0, validation_alias="SHIPCORD_RECONCILE_INTERVAL")
    metrics_port: Port | None = Field(None, validation_alias="SHIPCORD_METRICS_PORT")
    # Interface both metrics ports bind to: loopback unless Prometheus scrapes from elsewhere.
    metrics_address: NonBlank = Field("127.0.0.1", validation_alias="SHIPCORD_METRICS_ADDRESS")
    # The bridge network docker releases run on (created on first use).
    docker_network: NonBlank = Field(
        "shipcord-releases", validation_alias="SHIPCORD_DOCKER_NETWORK"
    )
    # The host this worker runs on (`shipcord worker --host NAME` overrides it): a stable
    # name, not the machine's hostname, since its releases and supervisor are found by it.
    host: HostName = Field(DEFAULT_HOST, validation_alias="SHIPCORD_HOST")
    # Where a target without `host` runs (default: this worker's host). Set it to the same
    # value on every worker once there are several hosts.
    default_host: HostName | None = Field(None, validation_alias="SHIPCORD_DEFAULT_HOST")
    # How long an activity waits for a worker of its host before the deployment fails with
    # "host NAME has no running worker" (the guide's schedule-to-start: 1 minute).
    host_start_timeout: float = Field(
        60.0, gt=0, le=600, validation_alias="SHIPCORD_HOST_START_TIMEOUT"
    )
    # A host whose workers have not polled its queue for this long is gone (an idle worker
    # polls at least once per the server's long-poll interval, a minute by default).
    host_heartbeat_timeout: float = Field(
        90.0, gt=0, validation_alias="SHIPCORD_HOST_HEARTBEAT_TIMEOUT"
    )
    # Seconds between two looks of the front end at the hosts' heartbeats.
    host_watch_interval: float = Field(10.0, gt=0, validation_alias="SHIPCORD_HOST_WATCH_INTERVAL")

    # -- field validators -------------------------------------------------------------------

    @field_validator(
        "temporal_address",
        "temporal_tls_cert_path",
        "temporal_tls_key_path",
        "temporal_tls_ca_path",
        "temporal_api_key",
        "temporal_ui_url",
        "discord_token",
        "discord_token_file",
        "payload_key",
        "discord_dev_guild_id",
        "admin_role",
        "metrics_port",
        "default_host",
        mode="before",
    )
    @classmethod
    def _blank_means_unset(cls, value: Any) -> Any:
        # env_ignore_empty covers the environment; this covers .env files and overrides.
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if value.lower() in ("auto", "console", "json"):
            return value.lower()
        return _LOG_LEVEL_ALIASES.get(value.upper(), value.upper())

    @field_validator("payload_key")
    @classmethod
    def _aes_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(payload_key_bytes(key)) not in _AES_KEY_SIZES:
            raise ValueError(
                "must be the base64 of a 16, 24 or 32-byte key "
                "(make one with: python3 -c 'import os, base64; "
                "print(base64.b64encode(os.urandom(32)).decode())')"
            )
        return key

    @field_validator("data_dir", "targets_file")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("guild_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        problems: list[str] = []
        if self.discord_token_file is not None:
            if self.discord_token is not None:
                problems.append(
                    "DISCORD_TOKEN and DISCORD_TOKEN_FILE are both set: keep one of them"
                )
            else:
                self._read_token_file(problems)
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
        if self.payload_key is not None and self.embedded_temporal:
            if self.codec_port in (self.temporal_port, self.temporal_ui_port):
                problems.append(
                    "SHIPCORD_CODEC_PORT must differ from SHIPCORD_TEMPORAL_PORT and "
                    f"SHIPCORD_TEMPORAL_UI_PORT (it is {self.codec_port})"
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

    def _read_token_file(self, problems: list[str]) -> None:
        path = self.discord_token_file
        assert path is not None
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            problems.append(
                f"DISCORD_TOKEN_FILE: cannot read {path}: {why_unreadable(path, error)}"
            )
            return
        if not token:
            problems.append(f"DISCORD_TOKEN_FILE: {path} is empty")
            return
        self.discord_token = SecretStr(token)

    # -- derived values -----------------------------------------------------------------------

    @property
    def resolved_default_host(self) -> str:
        """Where a target without `host` runs."""
        return self.default_host or self.host

    @property
    def database_path(self) -> Path:
        """shipcord's own SQLite database (ownership, messages, bots, releases)."""
        return self.data_dir / "shipcord.db"

    @property
    def temporal_db_path(self) -> Path:
        """The embedded Temporal dev server's SQLite file."""
        return self.data_dir / "temporal.db"

    @property
    def configured_guild_ids(self) -> frozenset[int]:
        """Every server shipcord serves: SHIPCORD_GUILD_IDS and the development server."""
        ids = set(self.guild_ids)
        if self.discord_dev_guild_id is not None:
            ids.add(self.discord_dev_guild_id)
        return frozenset(ids)

    @property
    def embedded_temporal(self) -> bool:
        """True when shipcord runs its own Temporal dev server (no TEMPORAL_ADDRESS)."""
        return self.temporal_address is None

    @property
    def payload_key_bytes(self) -> bytes | None:
        """The AES key for payload encryption, or None when encryption is off."""
        return None if self.payload_key is None else payload_key_bytes(self.payload_key)

    @property
    def codec_url(self) -> str:
        """Where the Web UI (in the browser) reaches shipcord's codec endpoint."""
        host = "127.0.0.1" if self.codec_ip in ("0.0.0.0", "::") else self.codec_ip
        return f"http://{host}:{self.codec_port}"

    @property
    def sdk_metrics_port(self) -> int | None:
        """Port of the Temporal SDK's own Prometheus endpoint: SHIPCORD_METRICS_PORT + 1."""
        return None if self.metrics_port is None else self.metrics_port + 1

    @property
    def sdk_metrics_bind(self) -> str | None:
        """host:port the Temporal SDK's Prometheus endpoint binds to, when metrics are on."""
        if self.sdk_metrics_port is None:
            return None
        host = f"[{self.metrics_address}]" if ":" in self.metrics_address else self.metrics_address
        return f"{host}:{self.sdk_metrics_port}"

    @property
    def web_ui_base(self) -> str | None:
        """Base URL of the Temporal Web UI, when one is known."""
        if self.temporal_ui_url is not None:
            return self.temporal_ui_url
        if self.embedded_temporal:
            return f"http://127.0.0.1:{self.temporal_ui_port}"
        return None


def payload_key_bytes(key: SecretStr) -> bytes:
    try:
        return base64.b64decode(key.get_secret_value(), validate=True)
    except ValueError:
        return b""


_ENV_NAMES: dict[str, str] = {}
for _name, _field in Settings.model_fields.items():
    _alias = _field.validation_alias
    assert isinstance(_alias, str), _name
    _ENV_NAMES[_name] = _ENV_NAMES[_alias.lower()] = _alias
_SECRET_ENV_NAMES = {_ENV_NAMES[name] for name in _SECRET_FIELDS}


def _problem_lines(error: ValidationError) -> list[str]:
    lines: list[str] = []
    for where, message, value in validation_problems(error):
        if not where:  # model-level check: the message names its variables itself
            lines.extend(message.splitlines())
            continue
        key = where.split(".")[0]
        env_name = _ENV_NAMES.get(key) or _ENV_NAMES.get(key.lower()) or key
        line = f"{env_name}: {message[:1].lower() + message[1:]}"
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
