"""Settings: every environment variable, derived values, and readable, secret-free errors."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from shipcord.app import front_end_config
from shipcord.settings import Settings, SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_NAMES = [str(field.validation_alias) for field in Settings.model_fields.values()]
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.very-secret-token-value-0123456789"
PAYLOAD_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No shipcord variable from the outer environment leaks into these tests."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def load(**overrides: object) -> Settings:
    return load_settings(_env_file=None, **overrides)


def problems_of(error: pytest.ExceptionInfo[SettingsError]) -> list[str]:
    return error.value.problems


def test_defaults() -> None:
    settings = load()
    assert settings.temporal_enabled is True
    assert settings.temporal_address is None
    assert settings.temporal_namespace == "default"
    assert settings.temporal_task_queue == "opencell-tasks"
    assert settings.temporal_port == 7233
    assert settings.temporal_ui_port == 8233
    assert settings.discord_token is None
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.data_dir == Path("data")
    assert settings.targets_file == Path("targets.toml")
    assert settings.log_level == "INFO"
    assert settings.log_format == "auto"
    assert settings.progress_interval == 2.0
    assert settings.metrics_port is None
    assert settings.embedded_temporal
    assert settings.database_path == Path("data/shipcord.db")
    assert settings.temporal_db_path == Path("data/temporal.db")
    assert settings.web_ui_base == "http://127.0.0.1:8233"
    assert settings.sdk_metrics_port is None


def test_every_variable_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key, ca = (tmp_path / name for name in ("client.pem", "client.key", "ca.pem"))
    for path in (cert, key, ca):
        path.write_text("-----BEGIN TEST-----\n")
    environment = {
        "TEMPORAL_ENABLED": "false",
        "TEMPORAL_ADDRESS": "opencell-prod.tmprl.cloud:7233",
        "TEMPORAL_NAMESPACE": "opencell-prod",
        "TEMPORAL_TASK_QUEUE": "deploys",
        "TEMPORAL_TLS_CERT_PATH": str(cert),
        "TEMPORAL_TLS_KEY_PATH": str(key),
        "TEMPORAL_TLS_CA_PATH": str(ca),
        "TEMPORAL_API_KEY": "api-key-value",
        "SHIPCORD_TEMPORAL_PORT": "7300",
        "SHIPCORD_TEMPORAL_UI_PORT": "8300",
        "SHIPCORD_TEMPORAL_IP": "0.0.0.0",
        "SHIPCORD_TEMPORAL_UI_IP": "0.0.0.0",
        "SHIPCORD_TEMPORAL_UI_URL": "https://cloud.temporal.io/",
        "DISCORD_TOKEN": TOKEN,
        "DISCORD_API_BASE": "http://127.0.0.1:9999/api/v10/",
        "DISCORD_DEV_GUILD_ID": "123456789012345678",
        "SHIPCORD_ADMIN_ROLE": "deployers",
        "SHIPCORD_GUILD_IDS": "123456789012345678, 223456789012345678",
        "SHIPCORD_LEAVE_UNCONFIGURED_GUILDS": "true",
        "SHIPCORD_DATA_DIR": str(tmp_path / "state"),
        "SHIPCORD_TARGETS_FILE": str(tmp_path / "bots.toml"),
        "SHIPCORD_LOG_LEVEL": "warn",
        "SHIPCORD_LOG_FORMAT": "JSON",
        "SHIPCORD_PROGRESS_INTERVAL": "0.5",
        "SHIPCORD_RECONCILE_INTERVAL": "3",
        "SHIPCORD_METRICS_PORT": "9100",
        "SHIPCORD_METRICS_ADDRESS": "0.0.0.0",
        "SHIPCORD_DOCKER_NETWORK": "bots",
        "SHIPCORD_PAYLOAD_KEY": PAYLOAD_KEY,
        "SHIPCORD_CODEC_PORT": "8300",
        "SHIPCORD_CODEC_IP": "0.0.0.0",
        "SHIPCORD_HOST": "beta",
        "SHIPCORD_DEFAULT_HOST": "alpha",
        "SHIPCORD_HOST_START_TIMEOUT": "20",
        "SHIPCORD_HOST_HEARTBEAT_TIMEOUT": "45",
        "SHIPCORD_HOST_WATCH_INTERVAL": "5",
    }
    # DISCORD_TOKEN_FILE stands in for DISCORD_TOKEN: it has tests of its own.
    assert set(environment) | {"DISCORD_TOKEN_FILE"} == set(ENV_NAMES), "covers every setting"
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = load()

    assert settings.temporal_enabled is False
    assert settings.temporal_address == "opencell-prod.tmprl.cloud:7233"
    assert settings.temporal_namespace == "opencell-prod"
    assert settings.temporal_task_queue == "deploys"
    assert (settings.temporal_tls_cert_path, settings.temporal_tls_key_path) == (cert, key)
    assert settings.temporal_tls_ca_path == ca
    assert settings.temporal_api_key is not None
    assert settings.temporal_api_key.get_secret_value() == "api-key-value"
    assert (settings.temporal_port, settings.temporal_ui_port) == (7300, 8300)
    assert (settings.temporal_ip, settings.temporal_ui_ip) == ("0.0.0.0", "0.0.0.0")
    assert settings.discord_token is not None
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.discord_api_base == "http://127.0.0.1:9999/api/v10"
    assert settings.discord_dev_guild_id == 123456789012345678
    assert settings.admin_role == "deployers"
    assert settings.guild_ids == [123456789012345678, 223456789012345678]
    assert settings.leave_unconfigured_guilds is True
    assert settings.data_dir == tmp_path / "state"
    assert settings.database_path == tmp_path / "state" / "shipcord.db"
    assert settings.targets_file == tmp_path / "bots.toml"
    assert settings.log_level == "WARNING"
    assert settings.log_format == "json"
    assert settings.progress_interval == 0.5
    assert settings.reconcile_interval == 3.0
    assert (settings.metrics_port, settings.sdk_metrics_port) == (9100, 9101)
    assert settings.sdk_metrics_bind == "0.0.0.0:9101"
    assert settings.docker_network == "bots"
    assert (settings.host, settings.resolved_default_host) == ("beta", "alpha")
    assert settings.host_start_timeout == 20.0
    assert (settings.host_heartbeat_timeout, settings.host_watch_interval) == (45.0, 5.0)
    assert settings.payload_key_bytes == bytes(range(32))
    assert (settings.codec_port, settings.codec_url) == (8300, "http://127.0.0.1:8300")
    assert not settings.embedded_temporal
    assert front_end_config(settings).workflow_url("deploy-echo-1700000000000") == (
        "https://cloud.temporal.io/namespaces/opencell-prod/workflows/deploy-echo-1700000000000"
    )


def test_env_file_is_read_and_unknown_variables_ignored(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "TEMPORAL_NAMESPACE=from-file\nDISCORD_TOKEN=\nSOMETHING_ELSE=1\nSHIPCORD_METRICS_PORT=\n"
    )
    settings = load_settings(_env_file=env_file)
    assert settings.temporal_namespace == "from-file"
    assert settings.discord_token is None
    assert settings.metrics_port is None


def test_environment_wins_over_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TEMPORAL_TASK_QUEUE=from-file\n")
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", "from-env")
    assert load_settings(_env_file=env_file).temporal_task_queue == "from-env"


def test_env_example_documents_every_setting_with_its_default() -> None:
    example = REPO_ROOT / ".env.example"
    lines = example.read_text().splitlines()
    active = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    documented = {
        match.group(1): match.group(2)
        for line in lines
        if (match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=(.*)", line))
    }
    # Only what a person must fill in is set (the tokens, the servers): nothing in it
    # overrides what the Docker image sets.
    assert active == {"DISCORD_TOKEN", "ECHO_BOT_TOKEN", "SHIPCORD_GUILD_IDS"}
    assert set(ENV_NAMES) <= active | set(documented)
    for index, line in enumerate(lines):
        name = line.lstrip("# ").split("=", 1)[0]
        if name in ENV_NAMES or name in active:
            assert lines[index - 1].startswith("# "), f"{line} has no comment"
    # Each commented value is the default, as the comment says.
    for name, value in documented.items():
        if name in ENV_NAMES and value:
            field = next(
                f for f, info in Settings.model_fields.items() if info.validation_alias == name
            )
            assert load(**{field: value}) == load(), f"{name}={value} is not the default"
    assert load_settings(_env_file=example) == load()


def test_workflow_url_for_embedded_and_unknown_ui() -> None:
    embedded = load(temporal_namespace="ship cord", temporal_ui_port=9233)
    assert front_end_config(embedded).workflow_url("deploy-echo-1") == (
        "http://127.0.0.1:9233/namespaces/ship%20cord/workflows/deploy-echo-1"
    )
    remote = load(temporal_address="temporal:7233")
    assert remote.web_ui_base is None
    assert front_end_config(remote).workflow_url("deploy-echo-1") is None


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TEMPORAL_ENABLED", "maybe", "valid boolean"),
        ("TEMPORAL_ADDRESS", "http://localhost:7233", "host:port"),
        ("TEMPORAL_ADDRESS", "localhost", "host:port"),
        ("TEMPORAL_NAMESPACE", "   ", "at least 1 character"),
        ("TEMPORAL_TLS_CERT_PATH", "/nonexistent/cert.pem", "does not point to a file"),
        ("SHIPCORD_TEMPORAL_PORT", "abc", "valid integer"),
        ("SHIPCORD_TEMPORAL_PORT", "70000", "less than or equal to 65535"),
        ("SHIPCORD_TEMPORAL_UI_PORT", "0", "greater than or equal to 1"),
        ("SHIPCORD_TEMPORAL_UI_URL", "cloud.temporal.io", "http:// or https:// URL"),
        ("DISCORD_API_BASE", "ftp://discord.com/api", "http:// or https:// URL"),
        ("DISCORD_API_BASE", "not a url", "http:// or https:// URL"),
        ("DISCORD_DEV_GUILD_ID", "guild", "valid integer"),
        ("DISCORD_DEV_GUILD_ID", "-5", "greater than 0"),
        ("SHIPCORD_LOG_LEVEL", "loud", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("SHIPCORD_LOG_FORMAT", "xml", "'auto', 'console' or 'json'"),
        ("SHIPCORD_PROGRESS_INTERVAL", "0", "greater than 0"),
        ("SHIPCORD_PROGRESS_INTERVAL", "soon", "valid number"),
        ("SHIPCORD_METRICS_PORT", "http", "valid integer"),
    ],
)
def test_bad_value_gives_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load()
    problems = problems_of(error)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{variable}: ")
    assert expected in problems[0]
    assert "\n" not in problems[0]
    assert "pydantic" not in str(error.value)
    assert "errors.pydantic.dev" not in str(error.value)


def test_several_problems_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPCORD_TEMPORAL_PORT", "abc")
    monkeypatch.setenv("SHIPCORD_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as error:
        load()
    message = str(error.value)
    assert message.startswith("invalid shipcord configuration (2 problems):")
    assert "SHIPCORD_TEMPORAL_PORT: " in message
    assert "SHIPCORD_LOG_FORMAT: " in message


def test_tls_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("cert")
    with pytest.raises(SettingsError) as error:
        load(temporal_address="temporal:7233", temporal_tls_cert_path=cert)
    assert problems_of(error) == [
        "TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together "
        "(a client certificate needs its private key)"
    ]


def test_credentials_without_an_address_are_rejected() -> None:
    with pytest.raises(SettingsError) as error:
        load(temporal_api_key="key-for-cloud")
    (problem,) = problems_of(error)
    assert problem.startswith("TEMPORAL_API_KEY only applies to a remote Temporal server")
    assert "TEMPORAL_ADDRESS" in problem


def test_embedded_ports_must_differ() -> None:
    with pytest.raises(SettingsError, match="SHIPCORD_TEMPORAL_PORT and SHIPCORD_TEMPORAL_UI_PORT"):
        load(temporal_port=7300, temporal_ui_port=7300)


def test_metrics_ports_must_not_collide_with_temporal() -> None:
    with pytest.raises(SettingsError, match="SHIPCORD_METRICS_PORT"):
        load(metrics_port=7232)  # the SDK's metrics would take 7233


def test_secrets_never_appear_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("TEMPORAL_API_KEY", "cloud-api-key-secret")
    monkeypatch.setenv("SHIPCORD_TEMPORAL_PORT", "not-a-port")
    with pytest.raises(SettingsError) as error:
        load()
    assert TOKEN not in str(error.value)
    assert "cloud-api-key-secret" not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__

    monkeypatch.delenv("SHIPCORD_TEMPORAL_PORT")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "cloud:7233")
    settings = load()
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert TOKEN not in text
        assert "cloud-api-key-secret" not in text


def test_blank_values_mean_unset() -> None:
    settings = load(temporal_address="  ", discord_token="", metrics_port="", admin_role=" ")
    assert settings.temporal_address is None
    assert settings.discord_token is None
    assert settings.metrics_port is None
    assert settings.admin_role is None


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="temporal_prot"):
        load(temporal_prot=7233)


def test_the_host_defaults_to_local_and_is_its_own_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHIPCORD_HOST", raising=False)
    monkeypatch.setenv("SHIPCORD_DEFAULT_HOST", "")
    settings = load()
    assert (settings.host, settings.resolved_default_host) == ("local", "local")


def test_a_host_name_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPCORD_HOST", "Not A Host")
    with pytest.raises(SettingsError, match="SHIPCORD_HOST"):
        load()
